// Shared by the sandbox benchmarks (bench/fastfail.ts, bench/setup.ts): running `proxywall run`
// with a deadline, reading its event lines, quantiles, and making sure nothing is left behind.
//
// Every benchmark here uses its own state directory and address pool, so it never claims a subnet
// another checkout's tests are using, and `proxywall gc` on that directory only ever touches what
// a benchmark made.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventLine, splitStderr, type Event } from "../test/support/events.ts";

export type { Event };

export const ROOT = join(import.meta.dir, "..");
export const BUN = process.execPath;
export const SRC_MAIN = join(ROOT, "src/main.ts");
export const STATE_DIR = "/run/proxywall-bench";
export const POOL = "10.203.0.0/16";
/** The proxy port of fastfail's and setup's sandboxes (neither sends anything through the proxy). */
export const PROXY_PORT = "3203";

/** proxywall from source, or a compiled binary: the argv that precedes the subcommand. */
export type Proxywall = { name: string; argv: readonly string[] };
export const FROM_SOURCE: Proxywall = { name: "bun src/main.ts", argv: [BUN, SRC_MAIN] };

/** Exits (2) unless this can build sandboxes at all: Linux, root. */
export function requireRootLinux(bench: string): void {
  if (process.platform !== "linux") {
    console.error(`${bench}: needs Linux (this is ${process.platform})`);
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    console.error(`${bench}: needs root (it builds network namespaces and firewall rules)`);
    process.exit(2);
  }
}

/** Nearest rank: the p90 of 20 values is the 18th smallest, the p99 of 50 the largest. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return "-";
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

/** Pads columns of a table (first row the header) to equal widths; numbers right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (/^[-0-9.]+x?$/.test(c) && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  events: Event[];
  timedOut: boolean;
}

/** At `ms`: SIGTERM (proxywall forwards it to CMD and tears down), SIGKILL 15 s later if still there. */
function stopAtDeadline(p: { kill(signal?: NodeJS.Signals): void }, ms: number): { readonly timedOut: boolean; clear(): void } {
  let timedOut = false;
  let killer: ReturnType<typeof setTimeout> | undefined;
  const term = setTimeout(() => {
    timedOut = true;
    p.kill("SIGTERM");
    killer = setTimeout(() => p.kill("SIGKILL"), 15_000);
  }, ms);
  return {
    get timedOut() {
      return timedOut;
    },
    clear() {
      clearTimeout(term);
      if (killer) clearTimeout(killer);
    },
  };
}

/**
 * Runs a command (a proxywall run) to its end, or to the deadline: then SIGTERM, which proxywall
 * forwards to CMD and then tears the sandbox down; SIGKILL only if that takes over 15 s more.
 */
export async function runWithDeadline(
  argv: readonly string[],
  deadlineMs: number,
  opts: { stdout?: "pipe" | "inherit"; env?: Record<string, string | undefined> } = {},
): Promise<RunResult> {
  const t0 = performance.now();
  const p = Bun.spawn([...argv], { stdin: "ignore", stdout: opts.stdout ?? "pipe", stderr: "pipe", cwd: ROOT, env: { ...process.env, ...opts.env } });
  const deadline = stopAtDeadline(p, deadlineMs);
  try {
    const [stdout, stderr] = await Promise.all([
      p.stdout instanceof ReadableStream ? new Response(p.stdout).text() : Promise.resolve(""),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    const wallMs = performance.now() - t0;
    return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), stdout, stderr, wallMs, events: splitStderr(stderr).events, timedOut: deadline.timedOut };
  } finally {
    deadline.clear();
  }
}

/** `proxywall run` in the benchmark's own state directory and pool. */
export function runArgv(pw: Proxywall, cmd: readonly string[], extra: readonly string[] = []): string[] {
  return [...pw.argv, "run", "--state-dir", STATE_DIR, "--pool", POOL, "--proxy-port", PROXY_PORT, ...extra, "--", ...cmd];
}

/** The namespaces and host-side links named in sandbox_ready events, and what of them still exists. */
export class Leftovers {
  private readonly netns = new Set<string>();
  private readonly links = new Set<string>();
  private readonly sandboxes = new Set<string>();

  /** Remembers a namespace and link that some step created, to check for them later. */
  track(netns: string | undefined, link: string | undefined): void {
    if (netns) this.netns.add(netns);
    if (link) this.links.add(link);
  }

  trackEvents(events: readonly Event[]): void {
    for (const e of events) {
      if (e.event === "sandbox_ready") this.track(e.netns as string, e.host_if as string);
      if (typeof e.sandbox === "string" && /^[0-9a-f]{8}$/.test(e.sandbox)) this.sandboxes.add(e.sandbox);
    }
  }

  /** The ids of the proxywall sandboxes seen in tracked events (for cleanupOwn). */
  ids(): string[] {
    return [...this.sandboxes];
  }

  /** Everything tracked that still exists, plus state files and claims in the state directory. */
  remaining(): string[] {
    const left: string[] = [];
    for (const n of this.netns) if (existsSync(`/run/netns/${n}`)) left.push(`namespace ${n}`);
    for (const l of this.links) if (existsSync(`/sys/class/net/${l}`)) left.push(`link ${l}`);
    for (const f of stateFiles()) left.push(`state ${f}`);
    return left;
  }
}

/**
 * Files in the benchmark state directory that stand for a sandbox (subnet claims, `<id>.json`
 * state files, `<id>.nft` scratch files, half-written `.tmp`s); empty when none is left. Caches
 * such as the per-boot `features.json` memo are not sandboxes and are not listed.
 */
export function stateFiles(): string[] {
  if (!existsSync(STATE_DIR)) return [];
  const out: string[] = [];
  for (const name of readdirSync(STATE_DIR)) {
    const p = join(STATE_DIR, name);
    if (name === "claims" && statSync(p).isDirectory()) out.push(...readdirSync(p).map((c) => join(p, c)));
    else if (/^[0-9a-f]{8}\./.test(name) || name.endsWith(".tmp")) out.push(p);
  }
  return out;
}

/**
 * Final cleanup: `proxywall gc` on the benchmark state directory (removes sandboxes whose owner is
 * gone, which after a crash or SIGKILL is all of them), then removes the directory itself, caches
 * included, when no sandbox file is left in it. Returns a description of anything still there.
 */
export function cleanupState(leftovers: Leftovers): string[] {
  if (existsSync(STATE_DIR) && stateFiles().length > 0) {
    const gc = Bun.spawnSync([...FROM_SOURCE.argv, "gc", "--state-dir", STATE_DIR], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    const said = (gc.stdout.toString() + gc.stderr.toString()).trim();
    if (said) console.error(`cleanup: proxywall gc: ${said}`);
  }
  if (existsSync(STATE_DIR) && stateFiles().length === 0) rmSync(STATE_DIR, { recursive: true, force: true });
  return leftovers.remaining();
}

/** A sandbox id-shaped random name part (8 hex digits), as proxywall makes them. */
export function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- live runs (bench/latency.ts, bench/attribution.ts, bench/flood.ts) -------------------------
// These benchmarks read proxywall's lines while it runs, each stamped with the wall-clock time it
// arrived, rather than after it exits; they use an address pool of their own.

/** The address pool of the live benchmarks (fastfail and setup use POOL). */
export const LIVE_POOL = "10.205.0.0/16";

/**
 * Wall-clock time (CLOCK_REALTIME, what python's time.time() reads) in ms with sub-ms precision:
 * the time origin plus the monotonic clock, so it does not step within one run.
 */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `proxywall run` in the benchmark state directory and the given pool. */
export function runArgvInPool(pw: Proxywall, pool: string, cmd: readonly string[], extra: readonly string[] = []): string[] {
  return [...pw.argv, "run", "--state-dir", STATE_DIR, "--pool", pool, ...extra, "--", ...cmd];
}

/** A system binary by absolute path (/usr/bin first, so no pyenv shim or the like), or null. */
export function systemTool(name: string): string | null {
  for (const d of ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return Bun.which(name);
}

/** The network namespaces on this host whose names start with pw- (proxywall's), from `ip netns list`. */
export function pwNamespaces(): string[] {
  const ip = systemTool("ip");
  if (!ip) return [];
  const p = Bun.spawnSync([ip, "netns", "list"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  return p.stdout
    .toString()
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith("pw-"));
}

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
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (text: string, at: number) => void): Promise<void> {
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

/** The compiled binary for this machine in dist/ (linux-x64 or linux-arm64, glibc). */
export const DIST_BINARY = join(ROOT, `dist/proxywall-linux-${process.arch === "arm64" ? "arm64" : "x64"}`);
const DIST_TARGET = `linux-${process.arch === "arm64" ? "arm64" : "x64"}`;

/** Whether a proxywall binary has `run` with the options the live benchmarks use. */
function hasRun(bin: string): boolean {
  const p = Bun.spawnSync([bin, "run", "--help"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  const text = p.stdout.toString() + p.stderr.toString();
  return p.exitCode === 0 && text.includes("--events") && text.includes("--summary-interval");
}

function buildInto(outdir: string | null): void {
  const args = [BUN, "build.ts", "--target", DIST_TARGET, ...(outdir ? ["--outdir", outdir] : [])];
  console.error(`bench: building: ${args.slice(1).join(" ")}`);
  const b = Bun.spawnSync(args, { cwd: ROOT, stdout: "inherit", stderr: "inherit", timeout: 10 * 60_000 });
  if (b.exitCode !== 0) throw new Error(`bun build.ts --target ${DIST_TARGET} failed (exit ${b.exitCode})`);
}

export interface Compiled {
  /** The binary to run, or null (none, or a stale one and no build asked for). */
  pw: Proxywall | null;
  /** What the benchmark should say about it (stale, built where), if anything. */
  note: string | null;
  /** Removes a binary built into a temporary directory. */
  cleanup(): void;
}

/**
 * The compiled proxywall. dist/'s binary when it exists and has `run`; with `build`, a missing one
 * is built into dist/ (bun build.ts --target linux-x64), and one in dist/ that predates `run` is
 * left alone and a fresh one is built into a temporary directory instead.
 */
export function compiledProxywall(build: boolean): Compiled {
  const none = () => {};
  const name = `dist/${DIST_BINARY.split("/").pop()}`;
  if (!existsSync(DIST_BINARY)) {
    if (!build) return { pw: null, note: null, cleanup: none };
    buildInto(null);
    return { pw: { name, argv: [DIST_BINARY] }, note: `built ${name} from this checkout`, cleanup: none };
  }
  if (hasRun(DIST_BINARY)) return { pw: { name, argv: [DIST_BINARY] }, note: staleBinaryNote({ name, argv: [DIST_BINARY] }), cleanup: none };
  const stale = `${name} is stale (its \`run\` lacks --events or --summary-interval)`;
  if (!build) return { pw: null, note: `${stale}: not run; pass --compiled to build a fresh binary into a temporary directory`, cleanup: none };
  const dir = mkdtempSync(join(tmpdir(), "proxywall-bench-build-"));
  try {
    buildInto(dir);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const bin = join(dir, `proxywall-${DIST_TARGET}`);
  return {
    pw: { name: `compiled (fresh, proxywall-${DIST_TARGET})`, argv: [bin] },
    note: `${stale}; built a fresh one from this checkout into ${dir} (removed afterwards)`,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A note when the compiled binary is older than the newest file in src/ (it may not be this code). */
export function staleBinaryNote(pw: Proxywall): string | null {
  if (pw.argv.length !== 1) return null;
  const bin = statSync(pw.argv[0]!).mtimeMs;
  let newest = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else newest = Math.max(newest, st.mtimeMs);
    }
  };
  walk(join(ROOT, "src"));
  return newest > bin ? `note: ${pw.name} is older than the newest file in src/ (built ${new Date(bin).toISOString()}): it may not be the code in src/` : null;
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

function ipv4Int(a: string): number {
  return a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

/**
 * cleanupState, then what is left of this benchmark's own sandboxes only: the namespaces and
 * links tracked, state files of the sandbox ids given, subnet claims inside `pool`. Other
 * benchmarks' and tests' sandboxes may be alive in the same state directory at the same time.
 */
export function cleanupOwn(leftovers: Leftovers, ids: Iterable<string>, pool = LIVE_POOL): string[] {
  const own = [...ids];
  const [base, len] = pool.split("/") as [string, string];
  const mask = Number(len) === 0 ? 0 : (0xffffffff << (32 - Number(len))) >>> 0;
  const inPool = (a: string) => /^\d+\.\d+\.\d+\.\d+$/.test(a) && ((ipv4Int(a) & mask) >>> 0) === ((ipv4Int(base) & mask) >>> 0);
  return cleanupState(leftovers).filter((l) => {
    if (!l.startsWith("state ")) return true;
    const name = l.slice(l.lastIndexOf("/") + 1);
    return l.includes("/claims/") ? inPool(name) : own.some((id) => name.startsWith(`${id}.`));
  });
}

/** `ip netns list | grep pw-` after a benchmark, telling its own sandboxes' namespaces from others'. */
export function namespacesNote(ownIds: Iterable<string>): string {
  const own = new Set([...ownIds].map((id) => `pw-${id}`));
  const ns = pwNamespaces();
  const mine = ns.filter((n) => own.has(n));
  if (ns.length === 0) return "pw- namespaces on this host afterwards: none";
  return `pw- namespaces on this host afterwards: ${mine.length > 0 ? `THIS BENCHMARK'S: ${mine.join(" ")}` : "none of this benchmark's"}${ns.length > mine.length ? `; others' (tests or benchmarks running at the same time): ${ns.filter((n) => !own.has(n)).join(" ")}` : ""}`;
}

/** A whole-number command-line option `name N` in [min, max], or `fallback`. */
export function flag(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} needs a whole number from ${min} to ${max}`);
  return n;
}
