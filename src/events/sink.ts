// Where event lines go: stderr by default, `--events PATH` (appended) or `--events fd:N`.
import { fstatSync, openSync } from "node:fs";
import { LineWriter } from "./line-writer.ts";

/** Opens the event destination, or returns a one-line reason it cannot be used. */
export function openEventSink(spec: string | undefined): LineWriter | string {
  if (spec === undefined) return new LineWriter(2);
  const fdMatch = /^fd:(\d{1,9})$/.exec(spec);
  if (fdMatch) {
    const fd = Number(fdMatch[1]);
    try {
      fstatSync(fd);
    } catch {
      return `--events: file descriptor ${fd} is not open`;
    }
    return new LineWriter(fd);
  }
  if (spec.startsWith("fd:")) return `--events: ${spec} is not fd:N`;
  try {
    return new LineWriter(openSync(spec, "a", 0o600));
  } catch (e) {
    return `--events: cannot open ${spec}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}
