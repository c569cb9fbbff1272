// Writes JSON lines so that every line lands whole: each line is one synchronous write loop that
// nothing else in this process can run into, and a buffered writer flushes only whole lines.
//
// A writer that must outlive its destination (`run`'s and `monitor`'s event sink: keepGoing())
// never throws: supervision matters more than its output. A line that cannot be written (the
// reader went away, the disk is full, the descriptor was closed) is counted in `lost`, a line cut
// short in a regular file is cut off again so the file holds only whole lines, and the session
// says how many were lost at the end (reportLost).
import { fstatSync, ftruncateSync, writeSync } from "node:fs";

/** Errors after which no later write to the same descriptor can succeed. */
const FOREVER = new Set(["EPIPE", "EBADF", "ECONNRESET", "EINVAL"]);

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      // A non-blocking pipe whose reader is slow: wait for room rather than tear the line.
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") Bun.sleepSync(1);
      else throw Object.assign(e as Error, { written: off });
    }
  }
}

/** After a short write ended in an error: takes the torn tail back out of a regular file. */
function untear(fd: number, written: number): void {
  if (written === 0) return;
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size >= written) ftruncateSync(fd, st.size - written);
  } catch {
    // Not a file, or gone: nothing to take back.
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
  /** Lines in `buf`. */
  private pending = 0;
  /** keepGoing(): count lines that cannot be written instead of throwing. */
  private tolerant = false;
  /** Lines that could not be written (keepGoing() only). */
  lost = 0;
  /** The first error that lost a line, as its code (EPIPE, ENOSPC, ...). */
  failure: string | null = null;
  /** The descriptor can never be written again: later lines are counted without a system call. */
  private dead = false;
  /** Where the lines go, for messages: "stderr", "fd:9", a path. */
  label: string;

  /** `bufferChars` 0 writes each line at once; more batches whole lines (for bulk output). */
  constructor(
    readonly fd: number,
    private readonly bufferChars = 0,
  ) {
    this.label = fd === 2 ? "stderr" : fd === 1 ? "stdout" : `fd:${fd}`;
  }

  /** From now on a line that cannot be written is counted in `lost`, never thrown. */
  keepGoing(): this {
    this.tolerant = true;
    return this;
  }

  /** The destination was gone before the first line (a closed stderr): every line is counted as lost. */
  gone(why: string): this {
    this.dead = true;
    this.failure ??= why;
    return this;
  }

  write(event: object): void {
    this.writeLine(JSON.stringify(event));
  }

  writeLine(line: string): void {
    if (this.bufferChars === 0) {
      this.out(encoder.encode(line + "\n"), 1);
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const at = this.reserve(line.length * 3 + 1);
    if (at < 0) {
      this.out(encoder.encode(line + "\n"), 1);
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
      this.out(own.subarray(0, end + 1), 1);
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
    this.pending++;
    if (this.used >= this.bufferChars) this.flush();
  }

  flush(): void {
    if (this.used === 0 || !this.buf) return;
    const n = this.used;
    const lines = this.pending;
    this.used = 0;
    this.pending = 0;
    this.out(this.buf.subarray(0, n), lines);
  }

  /** Writes `lines` whole lines; a writer that keeps going counts them when they cannot be written. */
  private out(bytes: Uint8Array, lines: number): void {
    if (this.dead) {
      this.lost += lines;
      return;
    }
    try {
      writeAll(this.fd, bytes);
    } catch (e) {
      if (!this.tolerant) throw e;
      const err = e as NodeJS.ErrnoException & { written?: number };
      untear(this.fd, err.written ?? 0);
      const code = err.code ?? err.message;
      this.failure ??= code;
      this.lost += lines;
      if (FOREVER.has(code)) this.dead = true;
    }
  }
}

/**
 * Says once, on stderr, how many lines `w` lost and why. False when it could not be said there
 * (stderr is the lost destination, or is itself gone): the exit status must say it then.
 */
export function reportLost(w: LineWriter): boolean {
  if (w.lost === 0) return true;
  const text = `proxywall: error: ${w.lost} event line${w.lost === 1 ? "" : "s"} could not be written to ${w.label} (${w.failure})\n`;
  if (w.fd === 2) return false;
  try {
    writeAll(2, encoder.encode(text));
    return true;
  } catch {
    return false;
  }
}
