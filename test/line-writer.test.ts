// Event lines land whole, whatever the number of writers and the size of an event, even when the
// reader is slow enough that a single write() cannot take a whole line.
import { expect, test } from "bun:test";
import { join } from "node:path";

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
