// Which format `run` and `monitor` write, and where people see it. The rule, in one place:
//   - `--event-format F` is obeyed for the event destination;
//   - without it, the default destination (run: stderr, monitor: stdout) gets human lines when it
//     is a terminal and JSON otherwise, and `--events PATH|fd:N` always gets JSON;
//   - when the event lines go anywhere but stderr, are not human, and stderr is a terminal, the
//     terminal gets the human lines too (JSON to a file, a person watching).
// Colour only on a terminal, and never with NO_COLOR set (https://no-color.org) or TERM=dumb.
import { isatty } from "node:tty";
import type { EventWriter } from "./event-writer.ts";
import { loadEventFormat, type OutputFormatName } from "./formats/index.ts";
import { openEventSink } from "./sink.ts";

type Env = Record<string, string | undefined>;

/** Colour for lines written to `fd`. */
export function colorFor(fd: number, env: Env = process.env, tty: (fd: number) => boolean = isatty): boolean {
  if ((env.NO_COLOR ?? "") !== "") return false;
  if (env.TERM === "dumb") return false;
  return tty(fd);
}

export interface OutputChoice {
  /** The format of the event destination. */
  format: OutputFormatName;
  /** Human lines on stderr as well. */
  teeToStderr: boolean;
}

/**
 * The choice, as a pure function: `given` is --event-format (undefined when absent), `spec` is
 * --events (undefined when absent), `defaultFd` the command's own destination, `tty` says which
 * descriptors are terminals.
 */
export function chooseOutput(given: OutputFormatName | undefined, spec: string | undefined, defaultFd: 1 | 2, tty: (fd: number) => boolean): OutputChoice {
  const destFd = spec === undefined ? defaultFd : spec === "fd:2" ? 2 : null;
  const format = given ?? (spec === undefined && tty(defaultFd) ? "human" : "json");
  return { format, teeToStderr: format !== "human" && destFd !== 2 && tty(2) };
}

/**
 * Opens the event destination in the chosen format, with human lines teed to stderr where the
 * rule says; a string is the one-line reason the destination cannot be used.
 */
export async function openEventOutputs(given: OutputFormatName | undefined, spec: string | undefined, defaultFd: 1 | 2, env: Env = process.env): Promise<EventWriter | string> {
  const choice = chooseOutput(given, spec, defaultFd, isatty);
  // Opened as JSON, then given the human format: its colour depends on what was opened.
  const main = openEventSink(spec ?? (defaultFd === 2 ? undefined : "fd:1"), choice.format === "human" ? "json" : choice.format);
  if (typeof main === "string") return main;
  if (choice.format === "human") main.useFormat(await loadEventFormat("human", { color: colorFor(main.fd, env) }));
  if (choice.teeToStderr) {
    const tee = openEventSink(undefined, "json");
    if (typeof tee !== "string") {
      tee.useFormat(await loadEventFormat("human", { color: colorFor(2, env) }));
      main.tap((e) => tee.write(e));
    }
  }
  return main;
}
