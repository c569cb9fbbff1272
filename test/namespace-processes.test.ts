// The processes of one network namespace, newest first (src/monitor/namespace-processes.ts), for
// this process's own namespace.
import { afterAll, describe, expect, test } from "bun:test";
import { NamespaceProcesses } from "../src/monitor/namespace-processes.ts";

const children = [0, 1, 2].map(() => Bun.spawn(["sleep", "30"], { stdout: "ignore" }));
afterAll(() => {
  for (const c of children) c.kill();
});

describe("NamespaceProcesses", () => {
  test("lists every process of the namespace once, new children before this older process", () => {
    const procs = new NamespaceProcesses("/proc/self/ns/net");
    const listed = [...procs.newestFirst()];
    expect(new Set(listed).size).toBe(listed.length);
    const self = listed.indexOf(process.pid);
    expect(self).toBeGreaterThanOrEqual(0);
    for (const c of children) {
      expect(listed).toContain(c.pid);
      if (c.pid > process.pid) expect(listed.indexOf(c.pid)).toBeLessThan(self);
    }
    // The youngest child comes among the first: it is one of the ids handed out last.
    expect(listed.indexOf(children[2]!.pid)).toBeLessThan(listed.length / 2);
  });

  test("inside() for a pid of the namespace, not for one that is gone", () => {
    const procs = new NamespaceProcesses(`/proc/${process.pid}/ns/net`);
    expect(procs.inside(children[0]!.pid)).toBe(true);
    expect(procs.inside(2 ** 22 + 1)).toBe(false);
  });

  test("no namespace at the path: the constructor throws", () => {
    expect(() => new NamespaceProcesses("/nonexistent/ns/net")).toThrow();
  });
});
