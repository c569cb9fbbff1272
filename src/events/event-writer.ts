// A line writer for event lines in the chosen --event-format: every emitter (the session, the
// watch, the proxy, monitor, parse) writes EventLine objects and gets the format for free.
import type { EventFormat } from "./formats/index.ts";
import { eventFormat } from "./formats/index.ts";
import { LineWriter } from "./line-writer.ts";
import type { EventLine } from "./schema.ts";

export class EventWriter extends LineWriter {
  constructor(
    fd: number,
    readonly format: EventFormat = eventFormat("json"),
    bufferChars = 0,
  ) {
    super(fd, bufferChars);
  }

  /** Writes `event` as one line in this writer's format. */
  override write(event: EventLine): void {
    this.writeLine(this.format.line(event));
  }
}
