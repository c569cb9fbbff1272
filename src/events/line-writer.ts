// Writes JSON lines so that every line lands whole: each line is one synchronous write loop that
// nothing else in this process can run into, and a buffered writer flushes only whole lines.
import { writeSync } from "node:fs";

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      // A non-blocking pipe whose reader is slow: wait for room rather than tear the line.
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") Bun.sleepSync(1);
      else throw e;
    }
  }
}

const encoder = new TextEncoder();

/** Writes one kind of value as a line of UTF-8 straight into a byte buffer (no string in between). */
export interface LineEncoder<T> {
  /** An upper bound of the bytes `encode` writes for `value`, newline excluded. */
  maxBytes(value: T): number;
  /** Writes `value` at `at` (at most maxBytes(value) bytes) and returns the offset after it. */
  encode(value: T, buf: Uint8Array, at: number): number;
}

export class LineWriter {
  /** Whole lines, UTF-8, waiting for flush (buffered mode only). */
  private buf: Uint8Array | null = null;
  private used = 0;

  /** `bufferChars` 0 writes each line at once; more batches whole lines (for bulk output). */
  constructor(
    readonly fd: number,
    private readonly bufferChars = 0,
  ) {}

  write(event: object): void {
    this.writeLine(JSON.stringify(event));
  }

  writeLine(line: string): void {
    if (this.bufferChars === 0) {
      writeAll(this.fd, encoder.encode(line + "\n"));
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const at = this.reserve(line.length * 3 + 1);
    if (at < 0) {
      writeAll(this.fd, encoder.encode(line + "\n"));
      return;
    }
    this.commit(at + encoder.encodeInto(line, this.buf!.subarray(at)).written);
  }

  /** Writes `value` as one line through `lineEncoder`, without building the line as a string. */
  writeEncoded<T>(value: T, lineEncoder: LineEncoder<T>): void {
    const most = lineEncoder.maxBytes(value) + 1;
    const at = this.bufferChars === 0 ? -1 : this.reserve(most);
    if (at < 0) {
      const own = new Uint8Array(most);
      const end = lineEncoder.encode(value, own, 0);
      own[end] = 10;
      writeAll(this.fd, own.subarray(0, end + 1));
      return;
    }
    this.commit(lineEncoder.encode(value, this.buf!, at));
  }

  /** Room for `most` bytes in the buffer: the offset to write at, or -1 when it can never fit. */
  private reserve(most: number): number {
    this.buf ??= new Uint8Array(this.bufferChars * 3 + 1);
    if (this.used + most > this.buf.length) {
      // Flush first: lines are written whole or not at all. A line larger than the whole buffer
      // goes out on its own.
      this.flush();
      if (most > this.buf.length) return -1;
    }
    return this.used;
  }

  /** Ends the line that was written into the buffer up to `end`. */
  private commit(end: number): void {
    this.buf![end] = 10;
    this.used = end + 1;
    if (this.used >= this.bufferChars) this.flush();
  }

  flush(): void {
    if (this.used === 0 || !this.buf) return;
    const n = this.used;
    this.used = 0;
    writeAll(this.fd, this.buf.subarray(0, n));
  }
}
