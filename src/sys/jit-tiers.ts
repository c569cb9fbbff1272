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
const TIERS = { BUN_JSC_useDFGJIT: "0", BUN_JSC_useFTLJIT: "0" } as const;
/** Set only across the one execve, so the new image knows the options were ours. */
const MARK = "PROXYWALL_REEXECUTED";

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
    for (const k of Object.keys(TIERS)) delete env[k];
    jitTiers = "interpreter and baseline JIT (re-executed without DFG and FTL)";
    return;
  }
  if (Object.keys(TIERS).some((k) => k in env)) {
    jitTiers = "as BUN_JSC_* in the environment says";
    return;
  }
  const compiled = Bun.main.startsWith("/$bunfs/");
  try {
    if (!process.execve) throw new Error("no process.execve in this runtime");
    process.execve("/proc/self/exe", sameArgv(process.argv, process.argv0, process.execArgv, compiled), { ...env, ...TIERS, [MARK]: "1" });
  } catch (e) {
    jitTiers = `all tiers (re-executing failed: ${(e as Error).message})`;
    console.error(`proxywall: warning: could not restart itself without the optimizing JIT (${(e as Error).message}); memory grows more under a flood of bypasses, detection is unaffected`);
  }
}
