// Wall time of a whole `proxywall run -- true` (start, setup, CMD, teardown, exit), side by side
// with building a sandbox one process per step, the way a shell script would: the acceptance
// figure of "a sandbox with no host side" (commit 6c4e707). Target, compiled: median wall at most
// 0.5x the seed's one-process-per-step way in the same run, and the fence at most 15 ms.
//
//   node_modules/.bin/bun bench/setup.ts [--runs 20]
//
// Needs root. Each round runs, in an order that rotates from round to round:
//   - `bun src/main.ts run -- true`;
//   - the compiled binary's `run -- true` (bench/compiled.ts: dist/'s when it is newer than src/,
//     otherwise one built for this run with `bun build.ts --target linux-x64`);
//   - today's plan one process per step: `run --dry-run --backend B -- true` of this checkout, B
//     the backend the real runs chose, line by line (bench/per-step.ts);
//   - the seed's plan one process per step: the seed's (commit 4284f55) own dry run, recorded in
//     bench/fixtures/seed-dry-run-B.txt, with a host-side veth on a /30 that no route here
//     overlaps, made and removed in each round.
// proxywall also opens its NFLOG/NFQUEUE monitor, runs its self-test, starts its proxy, writes
// state files and garbage-collects; the per-step scripts do none of that. Two warm-up rounds are
// not counted. proxywall runs with PROXYWALL_DEBUG=1, which prints its own per-step times
// (`setup: STEP N ms`, `CMD N ms`, `teardown: STEP N ms`); their medians are printed too.
//
// Prints medians and p90s, proxywall's own setup_ms (from sandbox_ready), the ratios and the
// per-step breakdowns; never fails on a figure. Exit 0 unless the benchmark itself broke. State
// dir /run/proxywall-bench; the seed's host side in 10.203.128.0/17 and fd70:7077:acb::/48.
import { release } from "node:os";
import { cleanupOwn, cleanupState, Leftovers } from "./cleanup.ts";
import { compiledProxywall } from "./compiled.ts";
import { PHASES, perStepScript, runPerStep, seedDryRun, seedPlanOnFreeSlot, todaysDryRun, withFreshId, type PerStepResult, type Script } from "./per-step.ts";
import { flag, fmtMs, fmtRatio, FROM_SOURCE, lastError, quantile, readyOf, requireRootLinux, requireTool, runArgv, runWithDeadline, table, type Proxywall } from "./support.ts";

const TARGET_RATIO = 0.5;
const TARGET_FENCE_MS = 15;
const WARMUPS = 2;
const RUN_DEADLINE_MS = 60_000;
const RUNS = flag("--runs", 20, 1, 200);

interface PwSample {
  ms: number;
  setupMs: number | null;
  /** proxywall's own step times, "setup: fence" -> ms (PROXYWALL_DEBUG=1). */
  steps: Map<string, number>;
  failed: string | null;
  backend: string | null;
}

/** proxywall's debug lines `proxywall: setup: STEP N ms`, `proxywall: CMD N ms`, `proxywall: teardown: STEP N ms`. */
function debugSteps(stderr: string): Map<string, number> {
  const steps = new Map<string, number>();
  for (const m of stderr.matchAll(/^proxywall: ((?:setup|teardown): .+?|CMD)(?: \(.*\))? ([0-9.]+) ms$/gm)) steps.set(m[1]!, Number(m[2]));
  return steps;
}

async function runProxywall(pw: Proxywall, leftovers: Leftovers): Promise<PwSample> {
  const r = await runWithDeadline(runArgv(pw, ["true"], pw.name.endsWith("--keep-caps") ? ["--keep-caps"] : []), RUN_DEADLINE_MS, { env: { PROXYWALL_DEBUG: "1" } });
  leftovers.trackEvents(r.events);
  const ready = readyOf(r.events);
  const closed = r.events.find((e) => e.event === "sandbox_closed");
  let failed: string | null = null;
  if (r.timedOut) failed = "deadline";
  else if (r.code !== 0 || !ready) failed = `exit ${r.code}: ${lastError(r.stderr)}`;
  else if (closed && Array.isArray(closed.cleanup) && closed.cleanup.length > 0) failed = `cleanup: ${JSON.stringify(closed.cleanup)}`;
  return { ms: r.wallMs, setupMs: typeof ready?.setup_ms === "number" ? ready.setup_ms : null, steps: debugSteps(r.stderr), failed, backend: typeof ready?.backend === "string" ? ready.backend : null };
}

/** One kind of per-step run: a fresh script (fresh id; for the seed, a free slot) each time. */
interface PerStepWay {
  name: string;
  make(): Script;
  results: PerStepResult[];
  /** The last script made, for the step counts. */
  last: Script | null;
}

function perStepWay(name: string, make: () => Script, leftovers: Leftovers): PerStepWay {
  const way: PerStepWay = { name, results: [], last: null, make };
  way.make = () => {
    const s = make();
    leftovers.track(s.netns, s.hostLink ?? undefined);
    way.last = s;
    return s;
  };
  return way;
}

interface Measured {
  variants: { pw: Proxywall; samples: PwSample[] }[];
  ways: PerStepWay[];
  backend: string;
  seedSlot: string;
}

async function measure(variants: Proxywall[], leftovers: Leftovers): Promise<Measured> {
  const out = variants.map((pw) => ({ pw, samples: [] as PwSample[] }));
  let backend: string | null = null;
  for (let w = 0; w < WARMUPS; w++) {
    for (const pw of variants) {
      const s = await runProxywall(pw, leftovers);
      if (s.failed) throw new Error(`warm-up ${pw.name} run failed: ${s.failed}`);
      backend ??= s.backend;
    }
  }
  if (!backend) throw new Error("the warm-up runs installed no fence");
  const today = todaysDryRun(backend);
  const seed = seedDryRun(backend);
  let seedSlot = "";
  const ways = [
    perStepWay("per step, today's plan", () => perStepScript(withFreshId(today)), leftovers),
    perStepWay("per step, the seed's plan", () => {
      const p = seedPlanOnFreeSlot(seed);
      seedSlot = p.slot;
      return perStepScript(p.text);
    }, leftovers),
  ];
  for (let w = 0; w < WARMUPS; w++) {
    for (const way of ways) {
      const r = runPerStep(way.make());
      if (r.failed) throw new Error(`warm-up ${way.name} failed: ${r.failed}`);
    }
  }
  const k = out.length + ways.length;
  console.error(`setup: ${RUNS} rounds of ${[...variants.map((v) => v.name), ...ways.map((w) => w.name)].join(", ")} (order rotates)`);
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < k; j++) {
      const x = (i + j) % k;
      if (x < out.length) out[x]!.samples.push(await runProxywall(out[x]!.pw, leftovers));
      else {
        const way = ways[x - out.length]!;
        way.results.push(runPerStep(way.make()));
      }
    }
  }
  return { variants: out, ways, backend, seedSlot };
}

const ok = <T extends { failed: string | null }>(xs: readonly T[]) => xs.filter((x) => !x.failed);
const med = (xs: readonly number[]) => quantile(xs, 0.5);

function printSideBySide(m: Measured): void {
  const rows: string[][] = [["way", "processes", "n", "median ms", "p90 ms", "setup_ms median", "setup_ms p90", "failed"]];
  for (const v of m.variants) {
    const s = ok(v.samples);
    const setup = s.map((x) => x.setupMs).filter((x): x is number => x !== null);
    rows.push([`proxywall run -- true (${v.pw.name})`, "1", String(s.length), fmtMs(med(s.map((x) => x.ms))), fmtMs(quantile(s.map((x) => x.ms), 0.9)), fmtMs(med(setup)), fmtMs(quantile(setup, 0.9)), String(v.samples.length - s.length)]);
  }
  for (const w of m.ways) {
    const r = ok(w.results);
    rows.push([w.name, String(w.last?.steps.length ?? "?"), String(r.length), fmtMs(med(r.map((x) => x.ms))), fmtMs(quantile(r.map((x) => x.ms), 0.9)), "", "", String(w.results.length - r.length)]);
  }
  console.log(table(rows));
}

function printVerdicts(m: Measured): void {
  const [today, seed] = m.ways.map((w) => med(ok(w.results).map((x) => x.ms))) as [number, number];
  console.log("");
  for (const v of m.variants) {
    const wall = med(ok(v.samples).map((x) => x.ms));
    const verdict = wall / seed <= TARGET_RATIO ? "met" : "NOT met";
    console.log(`${v.pw.name} / per step, the seed's plan (medians): ${fmtRatio(wall / seed)} (target <= ${TARGET_RATIO}x: ${verdict})`);
    console.log(`${v.pw.name} / per step, today's plan (medians):     ${fmtRatio(wall / today)}`);
  }
  for (const v of m.variants) {
    const fence = med(ok(v.samples).flatMap((x) => x.steps.get("setup: fence") ?? []));
    console.log(`fence median (${v.pw.name}, setup: fence): ${fmtMs(fence)} ms (target <= ${TARGET_FENCE_MS} ms: ${fence <= TARGET_FENCE_MS ? "met" : "NOT met"})`);
  }
}

function printBreakdowns(m: Measured): void {
  const keys = [...new Set(m.variants.flatMap((v) => v.samples.flatMap((s) => [...s.steps.keys()])))];
  const rows: string[][] = [["proxywall's own steps (PROXYWALL_DEBUG=1), median ms", ...m.variants.map((v) => v.pw.name)]];
  for (const k of keys) rows.push([k, ...m.variants.map((v) => fmtMs(med(ok(v.samples).flatMap((s) => s.steps.get(k) ?? []))))]);
  rows.push(["wall - setup_ms (start-up, CMD, teardown, exit)", ...m.variants.map((v) => fmtMs(med(ok(v.samples).flatMap((s) => (s.setupMs === null ? [] : [s.ms - s.setupMs])))))]);
  console.log("");
  console.log(table(rows));
  const phaseRows: string[][] = [["per-step phases, median ms (processes)", ...m.ways.map((w) => w.name)]];
  for (const p of PHASES) phaseRows.push([p, ...m.ways.map((w) => `${fmtMs(med(ok(w.results).map((x) => x.phases[p] ?? 0)))} (${w.last?.counts[p] ?? "?"})`)]);
  console.log("");
  console.log(table(phaseRows));
}

/** `iptables -V`'s build: "nf_tables" or "legacy" (proxywall itself may pick iptables-legacy-restore). */
function iptablesBuild(): string {
  const p = Bun.spawnSync([requireTool("iptables", true), "-V"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  return /\((\S+)\)/.exec(p.stdout.toString())?.[1] ?? "build unknown";
}

async function main(): Promise<number> {
  requireRootLinux("setup");
  const leftovers = new Leftovers();
  const compiled = compiledProxywall(true);
  // "compiled --keep-caps" beside "compiled": the step `setup: CMD's init` (the exec stage and the
  // PID namespace, from sandbox_ready to CMD running) with and without the capability drop.
  const variants = [FROM_SOURCE, ...(compiled.pw ? [{ ...compiled.pw, name: "compiled" }, { ...compiled.pw, name: "compiled --keep-caps" }] : [])];
  let m: Measured;
  try {
    // gc of sandboxes a crashed benchmark left in the state directory (live ones are left alone).
    cleanupState(new Leftovers());
    m = await measure(variants, leftovers);
  } finally {
    compiled.cleanup();
    // Other benchmarks may have live sandboxes in the same state directory: report only ours.
    const left = cleanupOwn(leftovers);
    if (left.length > 0) console.error(`setup: LEFT BEHIND: ${left.join(", ")}`);
  }
  console.log(`kernel ${release()}; fence backend chosen by proxywall: ${m.backend}; compiled binary: ${compiled.note}`);
  console.log(`seed's host side, last round: ${m.seedSlot}; per-step fence tool: the system's ${m.backend === "nft" ? "nft" : `iptables/ip6tables (${iptablesBuild()})`}`);
  console.log("");
  printSideBySide(m);
  printVerdicts(m);
  printBreakdowns(m);
  const failures = [...m.variants.flatMap((v) => v.samples), ...m.ways.flatMap((w) => w.results)].filter((x) => x.failed).map((x) => x.failed!);
  if (failures.length > 0) console.log(`\nfailed runs (left out of the figures): ${[...new Set(failures)].join("; ")}`);
  return failures.length > (RUNS * (variants.length + m.ways.length)) / 2 ? 1 : 0;
}

process.exit(await main());
