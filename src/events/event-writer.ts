// A line writer for event lines in the chosen --event-format: every emitter (the session, the
// watch, the proxy, monitor, parse) writes EventLine objects and gets the format for free. Taps see
// every event after it is written: a second output (human lines on a terminal while JSON goes to a
// file) or a consumer of the run's own events (the CI summary), without a second writer to pass
// around, so the session's one writer still says what it lost.
import type { EventFormat } from "./formats/index.ts";
import { eventFormat } from "./formats/index.ts";
import { LineWriter } from "./line-writer.ts";
import type { EventLine } from "./schema.ts";

export type EventTap = (e: EventLine) => void;

export class EventWriter extends LineWriter {
  private readonly taps: EventTap[] = [];

  constructor(
    fd: number,
    private fmt: EventFormat = eventFormat("json"),
    bufferChars = 0,
  ) {
    super(fd, bufferChars);
  }

  get format(): EventFormat {
    return this.fmt;
  }

  /** Writes lines in `format` from now on (chosen once the destination is open and known). */
  useFormat(format: EventFormat): this {
    this.fmt = format;
    return this;
  }

  /** Calls `tap` with every event written from now on. */
  tap(tap: EventTap): this {
    this.taps.push(tap);
    return this;
  }

  /** Writes `event` as one line in this writer's format, then hands it to the taps. */
  override write(event: EventLine): void {
    const line = this.fmt.line(event);
    if (line !== "") this.writeLine(line);
    for (const t of this.taps) {
      try {
        t(event);
      } catch {
        // A tap is a by-product (a second output, a summary): it never stops the event lines.
      }
    }
  }
}
