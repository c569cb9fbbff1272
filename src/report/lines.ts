// Bytes in, lines out, for reading event files: split at "\n" on the bytes (a newline byte is never
// part of a UTF-8 sequence), each line decoded on its own, so no string larger than a line is ever
// made and the read buffer can be reused. A trailing "\r" is dropped; a line longer than `maxLine`
// bytes is counted and skipped whole.

const NL = 10;
const CR = 13;

export class LineReader {
  /** Lines skipped for being longer than maxLine bytes. */
  oversize = 0;
  private carry: Uint8Array = new Uint8Array(4096);
  private carryLen = 0;
  private discarding = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false });

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine: number,
  ) {}

  /** The next bytes; `bytes` is not kept (the caller may reuse it). */
  push(bytes: Uint8Array): void {
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(NL, start);
      if (nl === -1) break;
      if (this.carryLen > 0 || this.discarding) {
        this.hold(bytes, start, nl);
        if (!this.discarding) this.emit(this.carry, 0, this.carryLen);
        this.carryLen = 0;
        this.discarding = false;
      } else if (nl - start > this.maxLine) this.oversize++;
      else this.emit(bytes, start, nl);
      start = nl + 1;
    }
    if (start < bytes.length) this.hold(bytes, start, bytes.length);
  }

  /** The end of the input: a last line without a newline is a line too. */
  end(): void {
    if (this.carryLen > 0 && !this.discarding) this.emit(this.carry, 0, this.carryLen);
    this.carryLen = 0;
    this.discarding = false;
  }

  private hold(bytes: Uint8Array, from: number, to: number): void {
    if (this.discarding) return;
    const need = this.carryLen + (to - from);
    if (need > this.maxLine) {
      this.oversize++;
      this.discarding = true;
      this.carryLen = 0;
      return;
    }
    if (need > this.carry.length) {
      const bigger = new Uint8Array(Math.min(this.maxLine, Math.max(need, 2 * this.carry.length)));
      bigger.set(this.carry.subarray(0, this.carryLen));
      this.carry = bigger;
    }
    this.carry.set(bytes.subarray(from, to), this.carryLen);
    this.carryLen = need;
  }

  private emit(bytes: Uint8Array, from: number, to: number): void {
    if (to > from && bytes[to - 1] === CR) to--;
    this.onLine(this.decoder.decode(bytes.subarray(from, to)));
  }
}
