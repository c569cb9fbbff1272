// lines.ts: the same lines however the bytes are cut, UTF-8 across cuts, CRLF, no final newline,
// lines too long skipped and counted.
import { describe, expect, test } from "bun:test";
import { LineReader } from "../src/report/lines.ts";

function read(chunks: Uint8Array[], maxLine = 100): { lines: string[]; oversize: number } {
  const lines: string[] = [];
  const r = new LineReader((l) => lines.push(l), maxLine);
  for (const c of chunks) r.push(c);
  r.end();
  return { lines, oversize: r.oversize };
}

const enc = (s: string) => new TextEncoder().encode(s);

describe("line reader", () => {
  const text = 'first\r\n{"é":"ü€😀"}\n\nlast without newline';
  const want = ["first", '{"é":"ü€😀"}', "", "last without newline"];

  test("whole, and cut at every byte", () => {
    expect(read([enc(text)]).lines).toEqual(want);
    const bytes = enc(text);
    for (let cut = 1; cut < bytes.length; cut++) expect(read([bytes.subarray(0, cut), bytes.subarray(cut)]).lines).toEqual(want);
    expect(read([...bytes].map((b) => Uint8Array.of(b))).lines).toEqual(want);
  });

  test("a byte-order mark at the start is dropped", () => {
    expect(read([Uint8Array.of(0xef, 0xbb, 0xbf), enc("a\nb\n")]).lines).toEqual(["a", "b"]);
  });

  test("lines longer than the limit are skipped whole, in one chunk or across many", () => {
    const long = "x".repeat(150);
    expect(read([enc(`a\n${long}\nb\n`)])).toEqual({ lines: ["a", "b"], oversize: 1 });
    const bytes = enc(`a\n${long}\nb\n${long}`);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 7) }, (_, i) => bytes.subarray(i * 7, i * 7 + 7));
    expect(read(chunks)).toEqual({ lines: ["a", "b"], oversize: 2 });
  });
});
