// Benchmark of the policy (issue #10), side by side in one run:
//  1. decisions per second with 1,000 rules (target: at least 1,000,000/s on one core; JavaScript
//     decides on one thread): the rules and requests of bench/policy-mix.ts, no traffic;
//  2. the latency a 1,000-rule policy adds to a request through the real built-in proxy, against a
//     policy of the one rule that allows the upstream (target: at most 0.3 ms at the median);
//  3. CONNECT throughput against a direct download of the same file (target: at least 80 %), and
//     against a bare splice relay (bench/bare-relay.py, python3), the most this machine allows.
// 2 and 3 need root: they run in namespaces of the bench's own (bench/policy-proxy.ts).
//
// Decisions are measured with whatever JIT tiers this process has: proxywall's `run` executes
// itself without JavaScriptCore's optimizing tiers (src/sys/jit-tiers.ts), so also run
//   BUN_JSC_useDFGJIT=0 BUN_JSC_useFTLJIT=0 node_modules/.bin/bun bench/policy.ts --no-proxy
//
//   node_modules/.bin/bun bench/policy.ts [--rules N] [--seconds S] [--runs N] [--requests N]
//                                         [--file-mib N] [--file-runs N] [--no-proxy]
import { decideAll, decisionMix, mixOf } from "./policy-mix.ts";
import { proxyBench } from "./policy-proxy.ts";
import { flag } from "./support.ts";

const TARGET_PER_S = 1_000_000;
const RULES = flag("--rules", 1000, 10, 100_000);
const SECONDS = flag("--seconds", 2, 1, 60);
const RUNS = flag("--runs", 3, 1, 20);
const REQUESTS = flag("--requests", 2000, 10, 20_000);
const FILE_MIB = flag("--file-mib", 256, 1, 4096);
const FILE_RUNS = flag("--file-runs", 3, 1, 20);
const NO_PROXY = process.argv.includes("--no-proxy");

function tiers(): string {
  const off = ["BUN_JSC_useDFGJIT", "BUN_JSC_useFTLJIT"].filter((k) => process.env[k] === "0" || process.env[k] === "false");
  return off.length === 0 ? "every JIT tier" : `${off.map((k) => k.replace("BUN_JSC_use", "").replace("JIT", "")).join(" and ")} off (as proxywall's run)`;
}

const { policy, requests } = await decisionMix(RULES - 2);
const mix = mixOf(policy, requests);
// Warm-up: a second of decisions, so that every run measures code the JIT has finished compiling
// (200,000 decisions left the first run 10-30 % slower than the others in some runs).
let sink = 0;
for (let n = 0, t0 = performance.now(); performance.now() - t0 < 1000; n += 50_000) sink += decideAll(policy, requests, 50_000, n);
const rates: number[] = [];
for (let run = 0; run < RUNS; run++) {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    sink += decideAll(policy, requests, 100_000, n);
    n += 100_000;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const mainS = (main.user + main.system) / 1e6;
  rates.push(n / mainS);
  console.log(
    `run ${run + 1}: ${n.toLocaleString("en")} decisions: ${Math.round(n / mainS).toLocaleString("en")}/s of the deciding thread's CPU time (${mainS.toFixed(2)} s), ` +
      `${Math.round(n / cpuS).toLocaleString("en")}/s of the process's (${cpuS.toFixed(2)} s, with the collector's and compiler's threads), ${Math.round(n / wall).toLocaleString("en")}/s wall (${wall.toFixed(2)} s)`,
  );
}
rates.sort((a, b) => a - b);
const median = rates[Math.floor(rates.length / 2)]!;
console.log(
  `policy: ${policy.allow.count} allow + ${policy.deny.count} deny rules; requests: ${requests.length} (${mix.address} literal addresses, ${mix.nameDecided} names decided before resolving, ${mix.resolved} names resolved to 2 addresses; ${mix.allowed} allowed)`,
);
const defaultTiers = !tiers().includes("off");
console.log(
  `decisions per second of one core with ${tiers()} (the deciding thread's CPU time; wall clock also counts time the machine gave other processes): ` +
    `best ${Math.round(rates.at(-1)!).toLocaleString("en")}, median ${Math.round(median).toLocaleString("en")} ` +
    (defaultTiers ? `(target ${TARGET_PER_S.toLocaleString("en")} with every tier): ${median >= TARGET_PER_S ? "ok" : "BELOW TARGET"}` : "(the target is for every tier; this is what proxywall's run gets)"),
);
if (sink < 0) console.log(sink);

if (NO_PROXY) process.exit(0);
if (process.platform !== "linux" || process.getuid?.() !== 0) {
  console.log("\nproxied requests and CONNECT throughput: skipped (they need root on Linux, for namespaces of the bench's own)");
  process.exit(0);
}
const problems = await proxyBench({ requests: REQUESTS, rules: RULES, fileMiB: FILE_MIB, fileRuns: FILE_RUNS });
for (const p of problems) console.log(`PROBLEM: ${p}`);
process.exit(problems.length > 0 ? 1 : 0);
