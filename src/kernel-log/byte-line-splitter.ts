// Splits a stream of UTF-8 bytes into lines: the same lines and counts as decoding the stream with
// TextDecoder and splitting the text with LineSplitter, but only lines that contain the marker (and
// the rare line that spans two chunks) are ever decoded, each into a string of its own.
//
// Why bytes: decoding whole chunks made one large string per chunk (up to 512 KiB), and every slice
// of it pointed into it. JavaScriptCore's eden collections run while a chunk is being split, find
// that string alive and promote it to the old generation, where only a rare full collection frees
// it: peak RSS grew with the input (75 MiB at 100,000 lines, 130-180 MiB at 3,000,000). Here the
// caller's buffer is reused, and the only strings are short lines, so what survives a collection
// is a few hundred bytes.
//
// Equivalence with TextDecoder + LineSplitter:
// - A newline byte always decodes to "\n" and ends any incomplete sequence before it, so decoding
//   each line alone gives exactly the text between two newlines of the decoded stream.
// - TextDecoder drops a byte-order mark at the start of the stream only; lines are decoded with
//   ignoreBOM (keep it), and the stream's first three bytes are checked here.
// - The length cap counts UTF-16 units. A line of n bytes decodes to at least n/3 units (a 3-byte
//   sequence, or a 3-byte invalid subpart, gives one unit) and at most n, so only lines between
//   maxLine and 3 * maxLine bytes are decoded to be measured, and a carry of 3 * maxLine bytes
//   is enough.
import { MAX_LINE } from "./line-splitter.ts";

const NL = 10;
const CR = 13;
const BOM = [0xef, 0xbb, 0xbf] as const;

export class ByteLineSplitter {
  oversize = 0;
  /** Lines skipped because they do not contain the marker. */
  filtered = 0;
  /** The start of a line that continues in the next chunk (a copy: the caller reuses its buffer). */
  private readonly carry: Uint8Array;
  private carryLen = 0;
  /** The carried line is already longer than any line that can fit: skip to the next newline. */
  private discarding = false;
  /** The stream's first bytes while they may still be a byte-order mark; null once decided. */
  private head: number[] | null = [];
  /** The marker's UTF-8 bytes, or null to hand on every line. */
  private readonly marker: Buffer | null;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = MAX_LINE,
    marker = "",
  ) {
    this.carry = new Uint8Array(3 * maxLine);
    const bytes = Buffer.from(marker, "utf8");
    // A marker with U+FFFD (or a lone surrogate, which encodes as U+FFFD) can match text that
    // invalid bytes decoded to, which a byte search would miss: then filter nothing.
    const exact = marker !== "" && !marker.includes("\uFFFD") && bytes.toString("utf8") === marker;
    this.marker = exact ? bytes : null;
  }

  /** The next bytes of the stream. `bytes` is not kept: the caller may overwrite it on return. */
  push(bytes: Uint8Array): void {
    if (this.head !== null) bytes = this.skipBom(bytes);
    if (bytes.length > 0) this.split(bytes);
  }

  end(): void {
    if (this.head !== null) this.flushHead();
    if (this.carryLen > 0 && !this.discarding) this.finish(this.carry, 0, this.carryLen, true);
    this.carryLen = 0;
    this.discarding = false;
  }

  /** Holds back the stream's first bytes while they may be a byte-order mark; returns the rest. */
  private skipBom(bytes: Uint8Array): Uint8Array {
    const head = this.head!;
    let i = 0;
    while (head.length < BOM.length && i < bytes.length && bytes[i] === BOM[head.length]) head.push(bytes[i++]!);
    if (head.length === BOM.length) this.head = null; // a mark: dropped, as TextDecoder does
    else if (i < bytes.length) this.flushHead(); // not a mark: what was held is text
    return bytes.subarray(i);
  }

  private flushHead(): void {
    const head = this.head!;
    this.head = null;
    if (head.length > 0) this.split(Uint8Array.from(head));
  }

  private split(bytes: Uint8Array): void {
    const n = bytes.length;
    let start = 0;
    if (this.carryLen > 0 || this.discarding) {
      // The rest of the carried line. A line carried across chunks is always handed on.
      const nl = bytes.indexOf(NL);
      this.hold(bytes, 0, nl === -1 ? n : nl);
      if (nl === -1) return;
      if (!this.discarding) this.finish(this.carry, 0, this.carryLen, true);
      this.carryLen = 0;
      this.discarding = false;
      start = nl + 1;
    }
    const marker = this.marker;
    // A view for Buffer#indexOf, which finds a byte sequence (Uint8Array#indexOf finds one byte).
    const buf = marker === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, n);
    // The first marker occurrence at or after `start`: -1 none left, -2 not searched yet. The
    // marker is searched once per occurrence, so a line without it costs one newline search.
    let markerAt = -2;
    const maxLine = this.maxLine;
    for (;;) {
      const nl = bytes.indexOf(NL, start);
      if (nl === -1) break;
      let hit = true;
      if (buf !== null) {
        if (markerAt !== -1 && markerAt < start) markerAt = buf.indexOf(marker!, start);
        hit = markerAt !== -1 && markerAt < nl;
      }
      if (!hit && nl - start <= maxLine) this.filtered++;
      else this.finish(bytes, start, nl, hit);
      start = nl + 1;
    }
    if (start < n) this.hold(bytes, start, n);
  }

  /** Appends bytes[from, to) to the carried line, or gives up on a line that cannot fit. */
  private hold(bytes: Uint8Array, from: number, to: number): void {
    if (this.discarding) return;
    if (this.carryLen + (to - from) > this.carry.length) {
      this.carryLen = 0;
      this.discarding = true;
      this.oversize++;
      return;
    }
    this.carry.set(bytes.subarray(from, to), this.carryLen);
    this.carryLen += to - from;
  }

  /** The line bytes[from, to): counted as oversize, counted as filtered (no `hit`), or handed on. */
  private finish(bytes: Uint8Array, from: number, to: number, hit: boolean): void {
    let text: string | null = null;
    if (to - from > this.maxLine) {
      if (to - from > 3 * this.maxLine) {
        this.oversize++;
        return;
      }
      text = this.decoder.decode(bytes.subarray(from, to));
      if (text.length > this.maxLine) {
        this.oversize++;
        return;
      }
    }
    if (!hit) {
      this.filtered++;
      return;
    }
    // Only one CR, and only at the end (a CR byte is always the character CR).
    if (text !== null) this.onLine(text.charCodeAt(text.length - 1) === CR ? text.slice(0, -1) : text);
    else this.onLine(this.decoder.decode(bytes.subarray(from, to > from && bytes[to - 1] === CR ? to - 1 : to)));
  }
}
