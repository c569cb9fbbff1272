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

export class LineWriter {
  private pending: string[] = [];
  private pendingChars = 0;

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
    this.pending.push(line);
    this.pendingChars += line.length + 1;
    if (this.pendingChars >= this.bufferChars) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join("\n") + "\n";
    this.pending = [];
    this.pendingChars = 0;
    writeAll(this.fd, encoder.encode(text));
  }
}
