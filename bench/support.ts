// Shared by the benchmarks: paths, options, quantiles and tables, and running `proxywall run` to
// its end with a deadline. Cleanup checks are in cleanup.ts, runs read while they go in live.ts,
// the compiled binary in compiled.ts.
//
// Every sandbox benchmark uses the state directory STATE_DIR, so `proxywall gc` on it only ever
// touches what a benchmark made. Sandboxes have no host side: each is its own namespace with its
// own loopback, so no benchmark needs an address pool or a port of its own.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { splitStderr, type Event } from "../test/support/events.ts";

export type { Event };

export const ROOT = join(import.meta.dir, "..");
export const BUN = process.execPath;
export const SRC_MAIN = join(ROOT, "src/main.ts");
export const STATE_DIR = "/run/proxywall-bench";

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

/** A whole-number command-line option `name N` in [min, max], or `fallback`. */
export function flag(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} needs a whole number from ${min} to ${max}`);
  return n;
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

/** "a:3, b:1": how often each value occurs, in order of first appearance. */
export function tally(items: readonly string[], sep = ", "): string {
  const c = new Map<string, number>();
  for (const r of items) c.set(r, (c.get(r) ?? 0) + 1);
  return [...c].map(([k, n]) => `${k}:${n}`).join(sep) || "-";
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

/** A sandbox id-shaped random name part (8 hex digits), as proxywall makes them. */
export function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A system binary by absolute path, or null. /usr/bin first for clients (so no pyenv shim or the
 * like); `sbinFirst` for the network tools (ip, nft, iptables, nsenter).
 */
export function systemTool(name: string, sbinFirst = false): string | null {
  const bins = ["/usr/bin", "/bin"];
  const sbins = ["/usr/sbin", "/sbin"];
  for (const d of [...(sbinFirst ? [...sbins, ...bins] : [...bins, ...sbins]), "/usr/local/bin"]) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return Bun.which(name);
}

/** systemTool, or an error naming what is missing. */
export function requireTool(name: string, sbinFirst = false): string {
  const p = systemTool(name, sbinFirst);
  if (!p) throw new Error(`${name} not found`);
  return p;
}

/**
 * Wall-clock time (CLOCK_REALTIME, what python's time.time() reads) in ms with sub-ms precision:
 * the time origin plus the monotonic clock, so it does not step within one run.
 */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `proxywall run` in the benchmark state directory. */
export function runArgv(pw: Proxywall, cmd: readonly string[], extra: readonly string[] = []): string[] {
  return [...pw.argv, "run", "--state-dir", STATE_DIR, ...extra, "--", ...cmd];
}

/** The sandbox_ready line of a run, if it got that far. */
export function readyOf(events: readonly Event[]): Event | undefined {
  return events.find((e) => e.event === "sandbox_ready");
}

/** proxywall's last error line in its stderr ("" when none). */
export function lastError(stderr: string): string {
  return stderr.split("\n").filter((l) => l.startsWith("proxywall: error")).slice(-1)[0] ?? "";
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
export function stopAtDeadline(p: { kill(signal?: NodeJS.Signals): void }, ms: number): { readonly timedOut: boolean; clear(): void } {
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
