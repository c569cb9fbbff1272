// Event lines land whole, whatever the number of writers and the size of an event, even when the
// reader is slow enough that a single write() cannot take a whole line.
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LineWriter, reportLost } from "../src/events/line-writer.ts";
import { tempDir } from "./support/temp.ts";

/** A pipe's two ends, read and write. */
function pipe(): [number, number] {
  const { dlopen, FFIType, ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const fds = new Int32Array(2);
  const lib = dlopen("libc.so.6", { pipe: { args: [FFIType.ptr], returns: FFIType.i32 } });
  if (lib.symbols.pipe(ptr(fds)) !== 0) throw new Error("pipe() failed");
  lib.close();
  return [fds[0]!, fds[1]!];
}

async function run(mode: "direct" | "buffered") {
  const producers = 8;
  const perProducer = 12;
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures/many-writers.ts"), String(producers), String(perProducer), mode], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = p.stdout.getReader();
  const chunks: Uint8Array[] = [];
  for (let n = 0; ; n++) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    // A slow reader: the pipe fills, so writes come back short and must be continued.
    if (n % 50 === 0) await Bun.sleep(1);
  }
  expect(await p.exited).toBe(0);
  const text = Buffer.concat(chunks).toString("utf8");
  expect(text.endsWith("\n")).toBe(true);
  const lines = text.slice(0, -1).split("\n");
  expect(lines).toHaveLength(producers * perProducer);
  const seen = new Set<string>();
  for (const line of lines) {
    const e = JSON.parse(line) as { producer: number; i: number; pad: string };
    // A torn line would fail to parse, or mix two producers' padding.
    const own = String.fromCharCode(97 + e.producer);
    expect(e.pad === own.repeat(e.pad.length)).toBe(true);
    seen.add(`${e.producer}/${e.i}`);
  }
  expect(seen.size).toBe(producers * perProducer);
}

test("whole lines from many producers, events up to 1 MB, slow reader", () => run("direct"), 60_000);
test("the same through the buffered writer", () => run("buffered"), 60_000);

// A writer that keeps going (the event sink of run and monitor): a failing destination costs
// lines, counted, never supervision.
describe("keepGoing", () => {
  test("a full device (ENOSPC): every line counted as lost, nothing thrown; without keepGoing it throws", () => {
    const fd = openSync("/dev/full", "w");
    try {
      const w = new LineWriter(fd).keepGoing();
      w.write({ a: 1 });
      w.writeLine('{"b":2}');
      expect({ lost: w.lost, failure: w.failure }).toEqual({ lost: 2, failure: "ENOSPC" });
      expect(() => new LineWriter(fd).write({ a: 1 })).toThrow();
    } finally {
      closeSync(fd);
    }
  });

  test("buffered: the lines of a failed flush are counted one by one", () => {
    const fd = openSync("/dev/full", "w");
    try {
      const w = new LineWriter(fd, 1000).keepGoing();
      for (let i = 0; i < 5; i++) w.write({ i });
      w.flush();
      expect(w.lost).toBe(5);
    } finally {
      closeSync(fd);
    }
  });

  test("a pipe whose reader is gone (EPIPE): later lines are counted without writing", () => {
    const [r, wfd] = pipe();
    closeSync(r);
    try {
      const w = new LineWriter(wfd).keepGoing();
      for (let i = 0; i < 3; i++) w.write({ i });
      expect({ lost: w.lost, failure: w.failure }).toEqual({ lost: 3, failure: "EPIPE" });
    } finally {
      closeSync(wfd);
    }
  });

  test("a line cut short in a regular file is taken back out: the file holds whole lines only", async () => {
    const dir = tempDir("proxywall-line-writer-");
    try {
      const file = dir.path("events.jsonl");
      // RLIMIT_FSIZE of 1 KiB: the second line is written in part, then EFBIG (Bun ignores SIGXFSZ).
      const script = `import { openSync } from "node:fs"; import { LineWriter } from ${JSON.stringify(join(import.meta.dir, "../src/events/line-writer.ts"))};
        const w = new LineWriter(openSync(${JSON.stringify(file)}, "a")).keepGoing();
        w.writeLine("x".repeat(600)); w.writeLine("y".repeat(600)); w.writeLine("z".repeat(10));
        console.log(JSON.stringify({ lost: w.lost, failure: w.failure }));`;
      const p = Bun.spawnSync(["bash", "-c", `ulimit -f 1; exec "$0" -e "$1"`, process.execPath, script], { stderr: "pipe" });
      expect(p.stderr.toString()).toBe("");
      expect(JSON.parse(p.stdout.toString())).toEqual({ lost: 1, failure: "EFBIG" });
      expect(readFileSync(file, "utf8")).toBe(`${"x".repeat(600)}\n${"z".repeat(10)}\n`);
    } finally {
      dir.remove();
    }
  });
});

describe("reportLost", () => {
  test("one message on stderr with the count and the cause; false when the lost destination is stderr itself", () => {
    const w = new LineWriter(2).keepGoing();
    expect(reportLost(w)).toBe(true); // nothing lost: nothing to say
    const child = Bun.spawnSync([process.execPath, "-e", `import { openSync } from "node:fs"; import { LineWriter, reportLost } from ${JSON.stringify(join(import.meta.dir, "../src/events/line-writer.ts"))};
      const w = new LineWriter(openSync("/dev/full", "w")).keepGoing(); w.label = "/full/events.jsonl"; w.write({ a: 1 }); w.write({ b: 2 });
      const said = reportLost(w); const e = new LineWriter(2).keepGoing(); e.lost = 1; e.failure = "EPIPE";
      console.log(JSON.stringify({ said, stderrSink: reportLost(e) }));`], { stdio: ["ignore", "pipe", "pipe"] });
    expect(JSON.parse(child.stdout.toString())).toEqual({ said: true, stderrSink: false });
    expect(child.stderr.toString()).toBe("proxywall: error: 2 event lines could not be written to /full/events.jsonl (ENOSPC)\n");
  });
});
