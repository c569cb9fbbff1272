// Runs that the benchmark reads while they go (bench/latency.ts, bench/attribution.ts,
// bench/flood.ts): each of proxywall's lines stamped with the wall-clock time it arrived, rather
// than read after it exits; SIGINT/SIGTERM/SIGHUP stop every live run cleanly first.
import { eventLine } from "../test/support/events.ts";
import { ROOT, stopAtDeadline, wallMs, type Event } from "./support.ts";

export interface LiveResult {
  code: number | null;
  signal: string | null;
  wallMs: number;
  timedOut: boolean;
  /** Every JSON event line of proxywall's stderr, in order. */
  events: Event[];
  /** stderr lines that are not events (diagnostics), at most the last 200. */
  diagnostics: string[];
}

export interface LiveRun {
  readonly pid: number;
  /** Resolves once proxywall has exited and both of its streams are read to the end. */
  readonly done: Promise<LiveResult>;
  /** Signals proxywall, which forwards SIGTERM/SIGINT to CMD and then removes the sandbox. */
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<Bun.Subprocess>();
let interruptedBy: string | null = null;

/** The signal that interrupted the benchmark (a live run was stopped because of it), or null. */
export function interrupted(): string | null {
  return interruptedBy;
}

let handlersInstalled = false;
/**
 * On SIGINT/SIGTERM/SIGHUP the benchmark does not die at once: every live proxywall gets SIGTERM
 * (it stops CMD and removes its sandbox), and the benchmark's own cleanup runs as its awaits end.
 */
function installInterruptHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      interruptedBy ??= sig;
      console.error(`bench: ${sig}: stopping ${live.size} proxywall run(s), then cleaning up`);
      for (const p of live) p.kill("SIGTERM");
    });
  }
}

/** Calls onLine for each line of the stream with the time its chunk arrived (wallMs). */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (text: string, at: number) => void): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    const at = wallMs();
    if (done) break;
    const text = rest + decoder.decode(value, { stream: true });
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      onLine(text.slice(start, nl), at);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  rest += decoder.decode();
  if (rest) onLine(rest, wallMs());
}

/**
 * Starts a command (a `proxywall run`) with its stdout (CMD's, which proxywall passes through) and
 * stderr (the event lines) read line by line as they arrive. At the deadline: SIGTERM, SIGKILL 15 s
 * later. A callback that throws is reported and does not stop the reading.
 */
export function startLive(
  argv: readonly string[],
  opts: {
    deadlineMs: number;
    onEvent?: (e: Event, at: number) => void;
    onStdoutLine?: (text: string, at: number) => void;
  },
): LiveRun {
  installInterruptHandlers();
  const t0 = performance.now();
  const p = Bun.spawn([...argv], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: ROOT });
  live.add(p);
  if (interruptedBy) p.kill("SIGTERM");
  const deadline = stopAtDeadline(p, opts.deadlineMs);
  const events: Event[] = [];
  const diagnostics: string[] = [];
  const guard = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      console.error(`bench: ${what} callback failed: ${(e as Error).message}`);
    }
  };
  const onErr = (text: string, at: number) => {
    const e = eventLine(text);
    if (e) {
      events.push(e);
      if (opts.onEvent) guard("event", () => opts.onEvent!(e, at));
      return;
    }
    if (text.trim()) {
      diagnostics.push(text);
      if (diagnostics.length > 200) diagnostics.shift();
    }
  };
  const onOut = (text: string, at: number) => {
    if (opts.onStdoutLine) guard("stdout", () => opts.onStdoutLine!(text, at));
  };
  const done = Promise.all([readLines(p.stdout, onOut), readLines(p.stderr, onErr), p.exited])
    .then(() => ({
      code: p.exitCode,
      signal: p.signalCode === null ? null : String(p.signalCode),
      wallMs: performance.now() - t0,
      timedOut: deadline.timedOut,
      events,
      diagnostics,
    }))
    .finally(() => {
      deadline.clear();
      live.delete(p);
    });
  return { pid: p.pid, done, kill: (signal = "SIGTERM") => p.kill(signal) };
}

/** What went wrong with a finished live run: deadline, exit code, cleanup problems; empty when nothing. */
export function liveProblems(label: string, r: LiveResult, expectCode = 0): string[] {
  const out: string[] = [];
  if (r.timedOut) out.push(`${label}: hit its deadline and was stopped`);
  if (r.code !== expectCode) out.push(`${label}: proxywall exited ${r.code}${r.signal ? ` (${r.signal})` : ""}, expected ${expectCode}`);
  const closed = r.events.find((e) => e.event === "sandbox_closed");
  if (!closed) out.push(`${label}: no sandbox_closed line`);
  else if (Array.isArray(closed.cleanup) && closed.cleanup.length > 0) out.push(`${label}: cleanup problems: ${JSON.stringify(closed.cleanup)}`);
  return out;
}

/** startLive, with `onStart` told of the run (its pid) before it is awaited. */
export async function runLive(
  argv: readonly string[],
  opts: Parameters<typeof startLive>[1] & { onStart?: (run: LiveRun) => void },
): Promise<{ result: LiveResult }> {
  const run = startLive(argv, opts);
  opts.onStart?.(run);
  return { result: await run.done };
}

/**
 * liveProblems, plus whether CMD (the benchmark's worker or driver) said it finished; proxywall's
 * last diagnostics go to stderr when anything went wrong.
 */
export function checkLive(label: string, r: LiveResult, finished: boolean, cmd: string): string[] {
  const problems = liveProblems(label, r);
  if (!finished) problems.push(`${label}: the ${cmd} did not finish`);
  if (problems.length > 0 && r.diagnostics.length > 0) console.error(r.diagnostics.slice(-15).join("\n"));
  return problems;
}
