// Where event lines go: stderr by default, `--events PATH` (appended) or `--events fd:N`; in the
// --event-format given (json by default). The writer keeps going when its destination fails
// (LineWriter.keepGoing): lines are counted as lost, supervision goes on.
import { openSync } from "node:fs";
import { closedByCaller, describeFd } from "../sys/fd-info.ts";
import { closedStdio } from "../sys/jit-tiers.ts";
import { EventWriter } from "./event-writer.ts";
import { eventFormat, type EventFormatName } from "./formats/index.ts";

/**
 * Why descriptor `fd` cannot take event lines, or null when it can. proxywall's own descriptors
 * (the runtime's event loop: an epoll and an eventfd, at 3 and 4 unless the caller passed those
 * numbers) are anonymous inodes, which no caller can mean as a destination for lines.
 */
export function fdProblem(fd: number, link: string | null, flags: number | null): string | null {
  if (link === null) return `file descriptor ${fd} is not open`;
  if (link.startsWith("anon_inode:")) return `file descriptor ${fd} is one of proxywall's own (${link}), not one the caller passed: pass an open file, pipe or socket`;
  // O_ACCMODE 0 is O_RDONLY.
  if (flags !== null && (flags & 3) === 0) return `file descriptor ${fd} is open for reading only`;
  return null;
}

/** A writer on a standard descriptor: lines on one the caller closed are lost, and counted. */
function onStd(fd: 1 | 2, format: ReturnType<typeof eventFormat>): EventWriter {
  const w = new EventWriter(fd, format).keepGoing();
  const closed = closedStdio.has(fd) || closedByCaller(fd, describeFd(fd));
  return closed ? w.gone(`EBADF: ${fd === 2 ? "stderr" : "stdout"} was closed`) : w;
}

/** Opens the event destination, or returns a one-line reason it cannot be used. */
export function openEventSink(spec: string | undefined, formatName: EventFormatName = "json"): EventWriter | string {
  const format = eventFormat(formatName);
  if (spec === undefined) return onStd(2, format);
  const fdMatch = /^fd:(\d{1,9})$/.exec(spec);
  if (fdMatch) {
    const fd = Number(fdMatch[1]);
    const d = describeFd(fd);
    const problem = fdProblem(fd, d.link, d.flags);
    if (problem) return `--events: ${problem}`;
    return fd === 1 || fd === 2 ? onStd(fd, format) : new EventWriter(fd, format).keepGoing();
  }
  if (spec.startsWith("fd:")) return `--events: ${spec} is not fd:N`;
  try {
    const w = new EventWriter(openSync(spec, "a", 0o600), format).keepGoing();
    w.label = spec;
    return w;
  } catch (e) {
    return `--events: cannot open ${spec}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}
