// Splits streamed text into lines in constant memory: a line longer than `maxLine` is dropped
// whole (and counted), never accumulated. Kernel records are far shorter than the default cap.
//
// With a `marker`, lines that cannot contain it are only counted (`filtered`), never cut out of the
// chunk or handed on: the marker is searched once per occurrence in the whole chunk, so a stream that
// is mostly other kernel chatter costs one newline search per line. The filter only ever lets
// through more than it must (a line carried across chunks is always handed on); the consumer still
// checks each line it gets.

export const MAX_LINE = 16 * 1024;

export class LineSplitter {
  private carry = "";
  private discarding = false;
  oversize = 0;
  /** Lines skipped because they do not contain the marker. */
  filtered = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = MAX_LINE,
    private readonly marker = "",
  ) {}

  private deliver(line: string): void {
    if (line.length > this.maxLine) this.oversize++;
    else this.onLine(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line);
  }

  push(chunk: string): void {
    const marker = this.marker;
    let start = 0;
    // The first marker occurrence at or after `start`: -1 none left, -2 not searched yet.
    let markerAt = marker === "" ? 0 : -2;
    for (;;) {
      const nl = chunk.indexOf("\n", start);
      if (nl === -1) break;
      if (this.discarding) {
        this.discarding = false;
      } else if (this.carry !== "") {
        const line = this.carry + chunk.slice(start, nl);
        this.carry = "";
        this.deliver(line);
      } else if (nl - start > this.maxLine) {
        this.oversize++;
      } else {
        if (marker !== "") {
          if (markerAt !== -1 && markerAt < start) markerAt = chunk.indexOf(marker, start);
          if (markerAt === -1 || markerAt >= nl) {
            this.filtered++;
            start = nl + 1;
            continue;
          }
        }
        const line = chunk.slice(start, nl);
        this.onLine(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line);
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
    if (this.carry !== "" && !this.discarding) this.deliver(this.carry);
    this.carry = "";
    this.discarding = false;
  }
}
