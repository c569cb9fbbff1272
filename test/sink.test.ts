// Where event lines go (src/events/sink.ts): stderr by default, `--events PATH` (appended, made
// 0600), `--events fd:N` for an open descriptor; anything else is one line saying why.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { LineWriter } from "../src/events/line-writer.ts";
import { openEventSink } from "../src/events/sink.ts";
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
});
