// `run` and `monitor` run JavaScriptCore without its optimizing tiers (DFG and FTL), keeping the
// interpreter and the baseline JIT.
//
// Why: under a flood of bypasses (bench/flood.ts, ~10,000 attempts/s) tiering up the hot paths of
// both threads cost 5-7 MB of RSS that never came back (compiler working memory, the compilers'
// own code paged in from the binary, the optimized code): +10-14 % over a 10 s flood, against
// +4-8 % without those tiers. Detection latency, attribution and proxied requests measured the
// same either way (bench/latency.ts, bench/attribution.ts, bench/flood.ts), the flood's CPU time
// about 5 % higher: proxywall's per-packet work is system calls and short parsing.
//
// JavaScriptCore reads its options once, at process start, from BUN_JSC_* variables, so the
// process executes itself again (same pid, same arguments, before it has done anything) with them
// set, and the new image removes them from its environment, so CMD never sees them. Costs about
// 8 ms of start-up. A user who sets either variable has chosen JIT options: then nothing happens.
import { readlinkSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, libc } from "./libc.ts";
import { closedByCaller, describeFd } from "./fd-info.ts";

const TIERS = { BUN_JSC_useDFGJIT: "0", BUN_JSC_useFTLJIT: "0" } as const;
/** Set only across the one execve, so the new image knows the options were ours. */
const MARK = "PROXYWALL_REEXECUTED";
/** Across the execve too: the standard descriptors the caller had closed (Bun fills them with /dev/null). */
const CLOSED = "PROXYWALL_CLOSED_STDIO";

/** Standard descriptors the caller had closed, as the first image saw them (the sink counts their lines as lost). */
export const closedStdio = new Set<number>();

/**
 * The descriptors `--events fd:N` names, from the arguments before `--` (CMD's own come after).
 * Bun sets close-on-exec on every descriptor it inherits, so without help they would not reach
 * the re-executed image (and `fd:3` would then name the new image's own epoll).
 */
export function eventsFds(args: readonly string[]): number[] {
  const end = args.indexOf("--");
  const own = end < 0 ? args : args.slice(0, end);
  const fds: number[] = [];
  own.forEach((a, i) => {
    const value = a === "--events" ? own[i + 1] : a.startsWith("--events=") ? a.slice("--events=".length) : undefined;
    const m = value === undefined ? null : /^fd:(\d{1,9})$/.exec(value);
    if (m) fds.push(Number(m[1]));
  });
  return fds;
}

/** The caller's --events descriptors: open, and not proxywall's own (sink.ts refuses those). */
function callersFds(fds: readonly number[]): number[] {
  return fds.filter((fd) => {
    if (fd <= 2) return false;
    try {
      return !readlinkSync(`/proc/self/fd/${fd}`).startsWith("anon_inode:");
    } catch {
      return false; // not open: the new image says so
    }
  });
}

/** A NUL-terminated array of C strings, and the buffers it points into (keep them alive). */
function cStrings(strings: readonly string[]): { array: BigUint64Array; keep: Buffer[] } {
  const keep = strings.map((s) => Buffer.from(s + "\0"));
  const array = new BigUint64Array(strings.length + 1);
  keep.forEach((b, i) => (array[i] = BigInt(ptr(b))));
  return { array, keep };
}

/**
 * execve(2) itself, for when descriptors must survive: Bun's process.execve closes every
 * descriptor above 2 before executing, and Bun marks inherited ones close-on-exec at start.
 * Returns only on failure.
 */
function execveKeeping(fds: readonly number[], path: string, argv: readonly string[], env: Record<string, string | undefined>): void {
  const F_SETFD = 2;
  const c = libc();
  for (const fd of fds) c.fcntl(fd, F_SETFD, 0);
  const file = Buffer.from(path + "\0");
  const args = cStrings(argv);
  const vars = cStrings(Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])));
  c.execve(ptr(file), ptr(args.array), ptr(vars.array));
  const why = errno();
  // Still this image: CMD must not inherit them.
  for (const fd of fds) c.fcntl(fd, F_SETFD, 1);
  throw new Error(`execve: errno ${why}`);
}

/** What the JIT runs with, for PROXYWALL_DEBUG. */
export let jitTiers = "all tiers (not re-executed)";

/** Arguments that start this program again: the compiled binary takes only the user's arguments. */
export function sameArgv(argv: readonly string[], argv0: string, execArgv: readonly string[], compiled: boolean): string[] {
  return compiled ? [argv0, ...argv.slice(2)] : [argv0, ...execArgv, ...argv.slice(1)];
}

/**
 * Returns only when the process keeps going as it is: already re-executed (then the variables are
 * gone from process.env), the user chose JSC options, or execve failed (said on stderr, since
 * memory under a flood then grows more; detection is unaffected).
 */
export function withoutOptimizingJit(): void {
  const env = process.env;
  if (env[MARK] === "1") {
    delete env[MARK];
    for (const fd of (env[CLOSED] ?? "").split(",")) if (fd === "1" || fd === "2") closedStdio.add(Number(fd));
    delete env[CLOSED];
    for (const k of Object.keys(TIERS)) delete env[k];
    jitTiers = "interpreter and baseline JIT (re-executed without DFG and FTL)";
    return;
  }
  if (Object.keys(TIERS).some((k) => k in env)) {
    jitTiers = "as BUN_JSC_* in the environment says";
    return;
  }
  const compiled = Bun.main.startsWith("/$bunfs/");
  // The real path, not /proc/self/exe: the kernel names the process after the file executed, and
  // "exe" is a name `ps -C proxywall`, `pgrep -x proxywall` and `podman top` never find.
  try {
    if (!process.execve) throw new Error("no process.execve in this runtime");
    const argv = sameArgv(process.argv, process.argv0, process.execArgv, compiled);
    // The new image would see the /dev/null Bun put there as a descriptor the caller passed.
    const closed = [1, 2].filter((fd) => closedByCaller(fd, describeFd(fd)));
    const newEnv = { ...env, ...TIERS, [MARK]: "1", ...(closed.length > 0 ? { [CLOSED]: closed.join(",") } : {}) };
    const keep = callersFds(eventsFds(process.argv.slice(compiled ? 2 : 1)));
    if (keep.length > 0) execveKeeping(keep, process.execPath, argv, newEnv);
    else process.execve(process.execPath, argv, newEnv);
  } catch (e) {
    jitTiers = `all tiers (re-executing failed: ${(e as Error).message})`;
    console.error(`proxywall: warning: could not restart itself without the optimizing JIT (${(e as Error).message}); memory grows more under a flood of bypasses, detection is unaffected`);
  }
}
