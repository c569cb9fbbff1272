// Splits streamed text into lines in constant memory: a line longer than `maxLine` is dropped
// whole (and counted), never accumulated. Kernel records are far shorter than the default cap.

export const MAX_LINE = 16 * 1024;

export class LineSplitter {
  private carry = "";
  private discarding = false;
  oversize = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = MAX_LINE,
  ) {}

  push(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf("\n", start);
      if (nl === -1) break;
      if (this.discarding) {
        this.discarding = false;
      } else {
        const piece = chunk.slice(start, nl);
        const line = this.carry ? this.carry + piece : piece;
        this.carry = "";
        if (line.length > this.maxLine) this.oversize++;
        else this.onLine(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line);
      }
      start = nl + 1;
    }
    if (start < chunk.length && !this.discarding) {
      this.carry += chunk.slice(start);
      if (this.carry.length > this.maxLine) {
        this.carry = "";
        this.discarding = true;
        this.oversize++;
      }
    }
  }

  end(): void {
    if (this.carry && !this.discarding) this.onLine(this.carry);
    this.carry = "";
    this.discarding = false;
  }
}
