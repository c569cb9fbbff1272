// Process facts from /proc (src/sys/procfs.ts), read about real processes: this one and a child
// whose command name holds a space and parentheses.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { namespaceId, parentPid, pidsInNetns, processStartTime, statFields, statusNumber } from "../src/sys/procfs.ts";

const dir = mkdtempSync(join(tmpdir(), "pwprocfs-"));
const odd = join(dir, "a) (b");
copyFileSync("/bin/sleep", odd);
const child = Bun.spawn([odd, "30"], { stdout: "ignore", stderr: "ignore" });
const GONE = 2 ** 22 + 1;
afterAll(() => {
  child.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("statFields", () => {
  test("fields after the command name, even one with ') (' in it: field N at index N - 3", async () => {
    await Bun.sleep(20); // until the child has executed the copy
    const f = statFields(child.pid)!;
    expect(["R", "S", "D"]).toContain(f[0]!); // field 3, state
    expect(Number(f[1])).toBe(process.pid); // field 4, ppid
    expect(Number(f[19])).toBeGreaterThan(0); // field 22, start time
  });

  test("a pid that is gone: null", () => {
    expect(statFields(GONE)).toBeNull();
  });
});

describe("parentPid, processStartTime, statusNumber", () => {
  test("of a child: this process, a start time no earlier than this process's, its own Tgid", () => {
    expect(parentPid(child.pid)).toBe(process.pid);
    expect(Number(processStartTime(child.pid))).toBeGreaterThanOrEqual(Number(processStartTime(process.pid)));
    expect(statusNumber(child.pid, "Tgid")).toBe(child.pid);
    expect(statusNumber(process.pid, "Uid")).toBe(process.getuid!());
    expect(statusNumber(process.pid, "NoSuchKey")).toBeNull();
  });

  test("of a pid that is gone: null", () => {
    expect(parentPid(GONE)).toBeNull();
    expect(processStartTime(GONE)).toBeNull();
    expect(statusNumber(GONE, "Tgid")).toBeNull();
  });
});

describe("namespaceId and pidsInNetns", () => {
  test("this process and its child share a network namespace, and both are listed in it", () => {
    const own = namespaceId("/proc/self/ns/net")!;
    expect(own.ino).toBeGreaterThan(0);
    expect(namespaceId(`/proc/${child.pid}/ns/net`)).toEqual(own);
    const pids = pidsInNetns(`/proc/${process.pid}/ns/net`);
    expect(pids).toContain(process.pid);
    expect(pids).toContain(child.pid);
  });

  test("no namespace at the path: null, and no pids", () => {
    expect(namespaceId(join(dir, "missing"))).toBeNull();
    expect(pidsInNetns(join(dir, "missing"))).toEqual([]);
  });
});
