// Where event lines go (src/events/sink.ts): stderr by default, `--events PATH` (appended, made
// 0600), `--events fd:N` for an open descriptor; anything else is one line saying why.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, openSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LineWriter } from "../src/events/line-writer.ts";
import { fdProblem, openEventSink } from "../src/events/sink.ts";
import { closedByCaller } from "../src/sys/fd-info.ts";
import { tempDir } from "./support/temp.ts";

const dir = tempDir("proxywall-sink-test-");
afterAll(() => dir.remove());

// Every descriptor a test opens (its own, and those openEventSink opens) is closed after it.
let fds: number[] = [];
afterEach(() => {
  for (const fd of fds) closeSync(fd);
  fds = [];
});

/** openEventSink(spec), which must give a writer; its fd is closed after the test unless it is 2. */
function sink(spec: string | undefined): LineWriter {
  const w = openEventSink(spec);
  if (typeof w === "string") throw new Error(`expected a writer for ${spec}, got: ${w}`);
  if (w.fd !== 2) fds.push(w.fd);
  return w;
}

describe("openEventSink", () => {
  test("no --events: stderr", () => {
    expect(sink(undefined).fd).toBe(2);
  });

  test("PATH: created with mode 0600, lines appended after what is there", () => {
    const fresh = dir.path("fresh.jsonl");
    sink(fresh).write({ event: "one" });
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect(readFileSync(fresh, "utf8")).toBe('{"event":"one"}\n');

    const old = dir.path("old.jsonl");
    writeFileSync(old, "earlier line\n", { mode: 0o644 });
    const w = sink(old);
    w.write({ event: "two" });
    w.writeLine('{"event":"three"}');
    expect(readFileSync(old, "utf8")).toBe('earlier line\n{"event":"two"}\n{"event":"three"}\n');
    // an existing file keeps its mode
    expect(statSync(old).mode & 0o777).toBe(0o644);
  });

  test("a relative PATH named like fd is a file", () => {
    const cwd = process.cwd();
    process.chdir(dir.root);
    try {
      sink("fd").write({ event: "relative" });
    } finally {
      process.chdir(cwd);
    }
    expect(readFileSync(dir.path("fd"), "utf8")).toBe('{"event":"relative"}\n');
  });

  test("fd:N of an open descriptor writes to it", () => {
    const file = dir.path("by-fd.jsonl");
    const fd = openSync(file, "w");
    fds.push(fd);
    const w = openEventSink(`fd:${fd}`);
    expect(w).toBeInstanceOf(LineWriter);
    expect((w as LineWriter).fd).toBe(fd);
    (w as LineWriter).write({ event: "via-fd" });
    // leading zeros name the same descriptor
    expect((openEventSink(`fd:00${fd}`) as LineWriter).fd).toBe(fd);
    expect(readFileSync(file, "utf8")).toBe('{"event":"via-fd"}\n');
  });

  test("fd:N of a closed descriptor", () => {
    const fd = openSync(dir.path("closed"), "w");
    closeSync(fd);
    expect(openEventSink(`fd:${fd}`)).toBe(`--events: file descriptor ${fd} is not open`);
    expect(openEventSink("fd:999999999")).toBe("--events: file descriptor 999999999 is not open");
  });

  test("fd: with anything but 1 to 9 digits", () => {
    for (const bad of ["fd:", "fd:x", "fd:-1", "fd:1.0", "fd: 3", "fd:3 ", "fd:1234567890", "fd:3:4"]) {
      expect({ bad, got: openEventSink(bad) }).toEqual({ bad, got: `--events: ${bad} is not fd:N` });
    }
  });

  test("a PATH that cannot be opened gives the error code", () => {
    mkdirSync(dir.path("a-directory"));
    expect(openEventSink(dir.path("no/such/dir/events.jsonl"))).toBe(`--events: cannot open ${dir.path("no/such/dir/events.jsonl")}: ENOENT`);
    expect(openEventSink(dir.path("a-directory"))).toBe(`--events: cannot open ${dir.path("a-directory")}: EISDIR`);
    expect(openEventSink("")).toBe("--events: cannot open : ENOENT");
  });

  test("fd:N that is proxywall's own (the runtime's epoll and eventfd), or open for reading only", () => {
    const own = [3, 4, 5, 6, 7, 8].find((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith("anon_inode:");
      } catch {
        return false;
      }
    });
    expect(own).toBeDefined();
    expect(openEventSink(`fd:${own}`)).toStartWith(`--events: file descriptor ${own} is one of proxywall's own (anon_inode:`);
    const ro = openSync(dir.path("read-only"), "w+");
    fds.push(ro);
    const r = openSync(dir.path("read-only"), "r");
    fds.push(r);
    expect(openEventSink(`fd:${r}`)).toBe(`--events: file descriptor ${r} is open for reading only`);
  });

  test("fdProblem, from what /proc says of a descriptor", () => {
    expect(fdProblem(9, null, null)).toBe("file descriptor 9 is not open");
    expect(fdProblem(3, "anon_inode:[eventpoll]", 0o2000002)).toContain("is one of proxywall's own (anon_inode:[eventpoll])");
    expect(fdProblem(9, "/tmp/x", 0o100000)).toBe("file descriptor 9 is open for reading only");
    expect(fdProblem(9, "/tmp/x", 0o102001)).toBeNull();
    expect(fdProblem(9, "pipe:[123]", 0o1)).toBeNull();
    expect(fdProblem(9, "/tmp/x", null)).toBeNull();
  });

  test("the writer keeps going: a destination that fails counts lost lines and never throws", () => {
    const w = sink(dir.path("kept.jsonl"));
    closeSync(w.fd);
    fds = fds.filter((fd) => fd !== w.fd);
    w.write({ event: "after-close" });
    w.write({ event: "again" });
    expect({ lost: w.lost, failure: w.failure }).toEqual({ lost: 2, failure: "EBADF" });
  });
});

describe("a standard descriptor the caller closed", () => {
  test("Bun's /dev/null in its place (close-on-exec) is told from the caller's own /dev/null", () => {
    expect(closedByCaller(2, { link: "/dev/null", flags: 0o2100002 })).toBe(true);
    expect(closedByCaller(2, { link: "/dev/null", flags: 0o100001 })).toBe(false);
    expect(closedByCaller(2, { link: "/tmp/x", flags: 0o2100002 })).toBe(false);
    expect(closedByCaller(9, { link: "/dev/null", flags: 0o2100002 })).toBe(false);
  });

  test("stderr closed: every event line is lost, counted, and no write is tried", () => {
    const p = Bun.spawnSync(["bash", "-c", `exec 2>&-; exec "$0" -e "$1"`, process.execPath, `import { openEventSink } from ${JSON.stringify(join(import.meta.dir, "../src/events/sink.ts"))};
      const w = openEventSink(undefined); w.write({ v: 1, event: "degraded", ts: "2026-11-30T00:00:00.000Z", sandbox: "x", component: "c", missing: "m", fix: "f", still_protected: "s" });
      console.log(JSON.stringify({ lost: w.lost, failure: w.failure }));`]);
    expect(JSON.parse(p.stdout.toString())).toEqual({ lost: 1, failure: "EBADF: stderr was closed" });
  });
});
