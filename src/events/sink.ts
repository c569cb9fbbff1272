// Where event lines go: stderr by default, `--events PATH` (appended) or `--events fd:N`; in the
// --event-format given (json by default).
import { fstatSync, openSync } from "node:fs";
import { EventWriter } from "./event-writer.ts";
import { eventFormat, type EventFormatName } from "./formats/index.ts";

/** Opens the event destination, or returns a one-line reason it cannot be used. */
export function openEventSink(spec: string | undefined, formatName: EventFormatName = "json"): EventWriter | string {
  const format = eventFormat(formatName);
  if (spec === undefined) return new EventWriter(2, format);
  const fdMatch = /^fd:(\d{1,9})$/.exec(spec);
  if (fdMatch) {
    const fd = Number(fdMatch[1]);
    try {
      fstatSync(fd);
    } catch {
      return `--events: file descriptor ${fd} is not open`;
    }
    return new EventWriter(fd, format);
  }
  if (spec.startsWith("fd:")) return `--events: ${spec} is not fd:N`;
  try {
    return new EventWriter(openSync(spec, "a", 0o600), format);
  } catch (e) {
    return `--events: cannot open ${spec}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}
