// Supervision outlives its outputs (issue #11, part 4), against the real kernel: an event sink
// that fails mid-run (the reader of a pipe went away, a full disk, a closed stderr) costs lines,
// never supervision. CMD runs to its end, the sandbox is removed, the lost lines are counted and
// said once on stderr (or by exit status 6 when stderr is gone too). And `--events fd:N` works from
// the compiled binary, for any descriptor the caller passed and never one of proxywall's own.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { eventsOf, splitStderr } from "./support/events.ts";
import { describePrivileged, MAIN, ROOT, TEST_ARGS } from "./support/privileged.ts";
import { tempDir, type TempDir } from "./support/temp.ts";

const PW = `"${process.execPath}" "${MAIN}"`;
/** CMD: a few direct attempts (each a bypass_detect line), then its own name for the sandbox's namespace and a marker. */
const CMD = `for i in 1 2 3 4 5 6; do curl -s --noproxy '*' -m 2 http://198.51.100.7:$((8000 + i))/; done; echo "netns=$(ip netns identify $$)"; echo CMD-DONE`;

function bash(script: string, timeoutMs = 40_000): { code: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync(["bash", "-c", script], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" }, timeout: timeoutMs });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** The sandbox CMD ran in is gone: its namespace and its state file. */
function expectRemoved(stdout: string): void {
  const netns = /netns=(pw-[0-9a-f]{8})/.exec(stdout)?.[1];
  expect(netns).toBeDefined();
  expect(existsSync(`/run/netns/${netns}`)).toBe(false);
  expect(existsSync(`/run/proxywall-test/${netns!.slice(3)}.json`)).toBe(false);
}

describePrivileged("a failing event sink never ends supervision", () => {
  let dir: TempDir;
  beforeAll(() => {
    dir = tempDir("proxywall-sink-failure-");
  });
  afterAll(() => dir?.remove());

  test("--events /dev/stdout | head -c 10: CMD ends normally, nothing left, the lost lines said on stderr", () => {
    const r = bash(`set -o pipefail; ${PW} run ${TEST_ARGS.join(" ")} --events /dev/stdout -- sh -c '{ ${CMD.replace(/'/g, `'\\''`)}; } >&2' | head -c 10 >/dev/null; echo "rc=\${PIPESTATUS[0]}"`);
    expect(r.stderr).toContain("CMD-DONE");
    expect(r.stdout).toContain("rc=0");
    expect(r.stderr).toMatch(/proxywall: error: \d+ event lines? could not be written to \/dev\/stdout \(EPIPE\)/);
    expectRemoved(r.stderr);
  });

  test("an events file on a full tmpfs: whole lines only in the file, CMD ends normally, the count said", () => {
    const mnt = dir.path("full");
    const file = join(mnt, "events.jsonl");
    // A mount namespace of the test's own, never the host's: 16 KiB, 12 KiB of it taken at once.
    const r = bash(`mkdir -p ${mnt}; unshare -m --propagation private sh -c '
      mount -t tmpfs -o size=16k tmpfs ${mnt} && head -c 12288 /dev/zero > ${mnt}/filler || exit 99
      ${PW} run ${TEST_ARGS.join(" ")} --events ${file} -- sh -c "${CMD.replace(/"/g, '\\"').replace(/\$/g, "\\$")}"
      echo "rc=$?"; cp ${file} ${dir.path("copy.jsonl")}'`);
    expect(r.stdout).toContain("CMD-DONE");
    expect(r.stdout).toContain("rc=0");
    const lost = /proxywall: error: (\d+) event lines? could not be written to (\S+) \((\w+)\)/.exec(r.stderr);
    expect(lost?.slice(2)).toEqual([file, "ENOSPC"]);
    expect(Number(lost![1])).toBeGreaterThan(0);
    const text = readFileSync(dir.path("copy.jsonl"), "utf8");
    expect(text.length).toBeGreaterThan(0);
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    for (const line of lines) expect(v.safeParse(EventLine, JSON.parse(line)).success).toBe(true);
    expect(eventsOf(splitStderr(text).events, "sandbox_ready")).toHaveLength(1);
    expectRemoved(r.stdout);
  });

  test("stderr closed: the events (on stderr) are lost and nothing can say so but the exit status, 6", () => {
    const r = bash(`${PW} run ${TEST_ARGS.join(" ")} -- sh -c '${CMD.replace(/'/g, `'\\''`)}' 2>&-; echo "rc=$?"`);
    expect(r.stdout).toContain("CMD-DONE");
    expect(r.stdout).toContain("rc=6");
    expectRemoved(r.stdout);
    // CMD's own failure is not hidden behind it
    const failed = bash(`${PW} run ${TEST_ARGS.join(" ")} -- sh -c 'curl -s --noproxy "*" -m 2 http://198.51.100.7/; exit 3' 2>&-; echo "rc=$?"`);
    expect(failed.stdout).toContain("rc=3");
  });
});

describePrivileged("--events fd:N from the compiled binary", () => {
  let out: TempDir;
  let bin = "";
  let built = { code: -1, stderr: "" };
  beforeAll(() => {
    out = tempDir("proxywall-fd-build-");
    bin = out.path("proxywall-linux-x64");
    const p = Bun.spawnSync([process.execPath, "build.ts", "--target", process.arch === "arm64" ? "linux-arm64" : "linux-x64", "--outdir", out.root], { cwd: ROOT });
    built = { code: p.exitCode ?? -1, stderr: p.stderr.toString() };
    if (process.arch === "arm64") bin = out.path("proxywall-linux-arm64");
  }, 180_000);
  afterAll(() => out?.remove());

  test("a descriptor the caller passed (9, and 3 where the runtime's own epoll would be) gets every line", () => {
    expect(built).toMatchObject({ code: 0 });
    for (const fd of [9, 3]) {
      const file = out.path(`fd${fd}.jsonl`);
      const r = bash(`"${bin}" run ${TEST_ARGS.join(" ")} --events fd:${fd} -- sh -c 'ls /proc/self/fd | tr "\\n" " "' ${fd}>${file}; echo " rc=$?"`);
      expect(r.stdout).toMatch(/ rc=0$/m);
      // CMD does not inherit it
      expect(r.stdout.split(" ")).not.toContain(String(fd === 3 ? 9 : fd));
      const events = splitStderr(readFileSync(file, "utf8")).events;
      expect(events.map((e) => e.event)).toContain("sandbox_ready");
      expect(events.at(-1)!.event).toBe("sandbox_closed");
    }
  });

  test("fd:N that the caller did not pass: not open, or proxywall's own (exit 2, one line)", () => {
    const notOpen = bash(`"${bin}" run ${TEST_ARGS.join(" ")} --events fd:9 -- true`);
    expect({ code: notOpen.code, stderr: notOpen.stderr }).toEqual({ code: 2, stderr: "proxywall: --events: file descriptor 9 is not open\n" });
    const own = bash(`"${bin}" run ${TEST_ARGS.join(" ")} --events fd:3 -- true`);
    expect(own.code).toBe(2);
    expect(own.stderr).toMatch(/^proxywall: --events: file descriptor 3 is one of proxywall's own \(anon_inode:\[eventpoll\]\), not one the caller passed: pass an open file, pipe or socket\n$/);
  });
});
