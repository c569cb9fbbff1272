// process.start_time against processes this test starts itself: the kernel counts start times in
// 10 ms ticks since boot, and the boot time is now read from the clocks (to the microsecond), not
// from /proc/stat's whole-second btime (which made start times up to a second early). No root.
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { processFacts } from "../src/monitor/process-info.ts";
import { bootTimeMs, startTimeMs, TICKS_PER_SECOND } from "../src/sys/procfs.ts";

const started: Bun.Subprocess[] = [];
afterAll(() => {
  for (const p of started) p.kill("SIGKILL");
});

test("the boot time agrees with /proc/stat's btime to the second and with /proc/uptime to its 10 ms", () => {
  const boot = bootTimeMs()!;
  expect(boot).toBeGreaterThan(0);
  const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))![1]);
  // btime is the same difference, cut to whole seconds (it may fall either side when NTP slews).
  expect(Math.abs(boot / 1000 - btime)).toBeLessThan(1.01);
  const before = Date.now();
  const uptimeS = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  const after = Date.now();
  // uptime is truncated to 10 ms: boot lies in (before - uptime - 10 ms, after - uptime].
  expect(boot).toBeLessThanOrEqual(after - uptimeS * 1000 + 1);
  expect(boot).toBeGreaterThan(before - uptimeS * 1000 - 10 - 1);
});

test("startTimeMs: whole ticks after the boot time; null without a boot time or a number", () => {
  expect(TICKS_PER_SECOND).toBe(100);
  expect(startTimeMs(1234, 1_000_000)).toBe(1_012_340);
  expect(startTimeMs(0, 5)).toBe(5);
  expect(startTimeMs(Number.NaN, 5)).toBeNull();
  expect(startTimeMs(-1, 5)).toBeNull();
  expect(startTimeMs(10, null)).toBeNull();
});

test("start_time of processes started here: never after the start, at most one tick before it", () => {
  const errors: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = Date.now();
    const p = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const t1 = Date.now();
    started.push(p);
    const facts = processFacts(p.pid)!;
    expect(facts.start_time).not.toBeNull();
    const start = Date.parse(facts.start_time!);
    // The fork happened within [t0, t1]; the kernel's tick and the ISO string's whole
    // milliseconds may each put the reported time earlier, never later.
    expect(start).toBeLessThanOrEqual(t1);
    expect(start).toBeGreaterThanOrEqual(t0 - 1000 / TICKS_PER_SECOND - 1);
    errors.push(start - (t0 + t1) / 2);
    p.kill("SIGKILL");
  }
  errors.sort((a, b) => a - b);
  const q = (f: number) => errors[Math.min(errors.length - 1, Math.floor(f * errors.length))]!.toFixed(1);
  console.error(`start_time minus spawn time (ms) over ${errors.length} processes: min ${q(0)}, median ${q(0.5)}, max ${q(1)}`);
});
