// Wall time of a whole `proxywall run -- true` (start, setup, CMD, teardown, exit), side by side
// with building the very same namespace, link, addresses, routes and rules one process per step,
// the way a shell script would.
//
//   node_modules/.bin/bun bench/setup.ts [--runs 20]
//
// Needs root. Each round runs, in an order that rotates from round to round:
//   - `bun src/main.ts run -- true`;
//   - the compiled binary's `run -- true`: dist/proxywall-linux-x64 when it is newer than every
//     file under src/, otherwise one built for this run into a temporary directory (dist/ is left
//     alone) with `bun build.ts --target linux-x64 --outdir TMP`;
//   - one process per step, mirroring `proxywall run --dry-run --backend B -- true` line by line,
//     B being the backend the real runs chose: each `ip` batch line as its own `ip` (inside the
//     namespace `ip -n NS`), each iptables-restore `-A` line as its own
//     `nsenter --net=/run/netns/NS iptables -w 5 -t TABLE -A ...` (a non-ACCEPT chain policy as
//     `-P`; the nft backend: `nft add table`, `nft add chain`, one `nft add rule` per rule), then
//     `nsenter --net=/run/netns/NS true` for CMD, then `ip link del` and `ip netns del`.
// proxywall also opens its NFLOG/NFQUEUE monitor, runs its self-test, starts its proxy, writes
// state files and garbage-collects; the per-step script does none of that, so it is the cheaper
// job. Two warm-up rounds are not counted (the first run of a boot also probes the firewall
// backends and remembers the outcome in the state directory; its setup_ms is printed).
// proxywall runs with PROXYWALL_DEBUG=1 so its own per-step times can be printed. A proxywall run
// that cannot build its sandbox (exit 3) is retried, untimed, up to twice: another checkout's live
// sandbox in the same slot number of its own pool holds the same IPv6 host address and proxy port.
//
// Prints medians and p90s, proxywall's own setup_ms (from sandbox_ready) and the ratios; never
// fails on a figure. Exit 0 unless the benchmark itself broke. State dir /run/proxywall-bench,
// pool 10.203.0.0/16 (proxywall) and 10.203.128.0/17 (the per-step script), proxy port 3203.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BUN,
  cleanupOwn,
  cleanupState,
  fmtMs,
  fmtRatio,
  FROM_SOURCE,
  Leftovers,
  POOL,
  PROXY_PORT,
  quantile,
  randomId,
  requireRootLinux,
  ROOT,
  runArgv,
  runWithDeadline,
  STATE_DIR,
  table,
  type Proxywall,
} from "./support.ts";

const MANUAL_POOL = "10.203.128.0/17";
const WARMUPS = 2;
const RUN_DEADLINE_MS = 60_000;

function flag(name: string, fallback: number, max: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} needs a whole number from 1 to ${max}`);
  return n;
}
const RUNS = flag("--runs", 20, 200);

// ---- the one-process-per-step script, from the dry-run text ---------------------------------------

type Phase = "host ip" | "namespace ip" | "firewall" | "CMD" | "teardown";
interface Step {
  phase: Phase;
  argv: string[];
}

/** Shell-like words: whitespace-separated, double quotes group (and are removed). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let cur: string | null = null;
  let last = 0;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const glued = m.index === last && cur !== null;
    const w = m[1] ?? m[2]!;
    if (glued) cur += w;
    else {
      if (cur !== null) out.push(cur);
      cur = w;
    }
    last = m.index + m[0].length;
  }
  if (cur !== null) out.push(cur);
  return out;
}

function tool(name: string): string {
  for (const d of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  const p = Bun.which(name);
  if (!p) throw new Error(`${name} not found`);
  return p;
}

interface Script {
  netns: string;
  hostIf: string;
  steps: Step[];
  /** What the dry-run said per section, for the printout. */
  counts: Record<Phase, number>;
}

/** Turns `run --dry-run` output into one command per line of it (see the header). */
function perStepScript(dryRun: string): Script {
  const ip = tool("ip");
  const nsenter = tool("nsenter");
  const steps: Step[] = [];
  const teardown: Step[] = [];
  let netns = "";
  let hostIf = "";
  type Section = { kind: "host" } | { kind: "teardown" } | { kind: "inside-ip"; ns: string } | { kind: "fence"; ns: string; tool: string } | null;
  let section: Section = null;
  let table = "filter";
  let chain: string | null = null;
  let tableAdded = false;
  const enter = (ns: string) => [nsenter, `--net=/run/netns/${ns}`];
  for (const raw of dryRun.split("\n")) {
    const line = raw.trim();
    const head = /^# (host|teardown, host|inside (\S+)): (.*)$/.exec(line);
    if (head) {
      const what = head[3]!;
      if (head[1] === "host") section = { kind: "host" };
      else if (head[1] === "teardown, host") section = { kind: "teardown" };
      else if (what.startsWith("ip ")) section = { kind: "inside-ip", ns: head[2]! };
      else section = { kind: "fence", ns: head[2]!, tool: what.split(/[ ,]/)[0]! };
      table = "filter";
      chain = null;
      continue;
    }
    if (line.startsWith("#")) {
      section = null;
      continue;
    }
    if (!line || !section) continue;
    if (section.kind === "host") {
      const w = words(line);
      steps.push({ phase: "host ip", argv: [ip, ...w] });
      if (w[0] === "netns" && w[1] === "add") netns = w[2]!;
      if (w[0] === "link" && w[1] === "add") hostIf = w[2]!;
    } else if (section.kind === "teardown") {
      teardown.push({ phase: "teardown", argv: [ip, ...words(line)] });
    } else if (section.kind === "inside-ip") {
      steps.push({ phase: "namespace ip", argv: [ip, "-n", section.ns, ...words(line)] });
    } else if (section.tool === "iptables-restore" || section.tool === "ip6tables-restore") {
      const bin = tool(section.tool === "iptables-restore" ? "iptables" : "ip6tables");
      if (line.startsWith("*")) table = line.slice(1);
      else if (line.startsWith(":")) {
        const [c, policy] = line.slice(1).split(/\s+/);
        if (policy && policy !== "ACCEPT" && policy !== "-") steps.push({ phase: "firewall", argv: [...enter(section.ns), bin, "-w", "5", "-t", table, "-P", c!, policy] });
      } else if (line.startsWith("-A ")) steps.push({ phase: "firewall", argv: [...enter(section.ns), bin, "-w", "5", "-t", table, ...words(line)] });
      else if (line !== "COMMIT") throw new Error(`unexpected ${section.tool} line in the dry run: ${line}`);
    } else if (section.tool === "nft") {
      const nft = tool("nft");
      const t = /^table (\S+ \S+) \{$/.exec(line);
      const c = /^chain (\S+) \{$/.exec(line);
      if (/^(add|delete) table /.test(line)) continue; // the replace-in-one-batch preamble
      if (t) {
        if (!tableAdded) steps.push({ phase: "firewall", argv: [...enter(section.ns), nft, `add table ${t[1]}`] });
        tableAdded = true;
        table = t[1]!;
      } else if (c) chain = c[1]!;
      else if (line === "}") chain = null;
      else if (chain && line.startsWith("type ")) steps.push({ phase: "firewall", argv: [...enter(section.ns), nft, `add chain ${table} ${chain} { ${line} }`] });
      else if (chain) steps.push({ phase: "firewall", argv: [...enter(section.ns), nft, `add rule ${table} ${chain} ${line}`] });
      else throw new Error(`unexpected nft line in the dry run: ${line}`);
    } else {
      throw new Error(`unknown fence tool in the dry run: ${section.tool}`);
    }
  }
  if (!netns || !hostIf || teardown.length === 0) throw new Error("the dry run did not show the namespace, link and teardown");
  steps.push({ phase: "CMD", argv: [...enter(netns), "true"] }, ...teardown);
  const counts = { "host ip": 0, "namespace ip": 0, firewall: 0, CMD: 0, teardown: 0 } as Record<Phase, number>;
  for (const s of steps) counts[s.phase]++;
  return { netns, hostIf, steps, counts };
}

function dryRun(backend: string): string {
  const p = Bun.spawnSync([...FROM_SOURCE.argv, "run", "--dry-run", "--backend", backend, "--pool", MANUAL_POOL, "--proxy-port", PROXY_PORT, "--", "true"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  if (p.exitCode !== 0) throw new Error(`run --dry-run failed (exit ${p.exitCode}): ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

interface ManualResult {
  ms: number;
  phases: Record<string, number>;
  failed: string | null;
}

/** Runs the per-step script once, under a fresh sandbox id; the teardown runs even after a failure. */
function runManual(template: string, leftovers: Leftovers): ManualResult {
  const oldId = /sandbox ([0-9a-f]{8})/.exec(template)?.[1];
  if (!oldId) throw new Error("no sandbox id in the dry run");
  const script = perStepScript(template.replaceAll(oldId, randomId()));
  leftovers.track(script.netns, script.hostIf);
  const phases: Record<string, number> = {};
  let failed: string | null = null;
  const t0 = performance.now();
  const run = (s: Step) => {
    const t = performance.now();
    const p = Bun.spawnSync(s.argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    phases[s.phase] = (phases[s.phase] ?? 0) + (performance.now() - t);
    return p;
  };
  const body = script.steps.filter((s) => s.phase !== "teardown");
  const teardown = script.steps.filter((s) => s.phase === "teardown");
  try {
    for (const s of body) {
      const p = run(s);
      if (p.exitCode !== 0) {
        failed = `${s.argv.slice(s.argv[0]!.endsWith("nsenter") ? 2 : 0).join(" ")}: exit ${p.exitCode}: ${p.stderr.toString().trim().split("\n").slice(-1)[0]}`;
        break;
      }
    }
  } finally {
    for (const s of teardown) {
      const p = run(s);
      if (p.exitCode !== 0 && !failed) failed = `${s.argv.join(" ")}: exit ${p.exitCode}: ${p.stderr.toString().trim()}`;
    }
  }
  return { ms: performance.now() - t0, phases, failed };
}

// ---- the compiled binary --------------------------------------------------------------------------

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

/** A compiled binary that matches src/ now, and a directory to remove afterwards (if one was built). */
function compiledBinary(): { bin: string | null; tmp: string | null; note: string } {
  if (process.arch !== "x64") return { bin: null, tmp: null, note: `no linux-x64 binary on ${process.arch}` };
  const dist = join(ROOT, "dist/proxywall-linux-x64");
  if (existsSync(dist) && statSync(dist).mtimeMs > newestMtime(join(ROOT, "src"))) return { bin: dist, tmp: null, note: "dist/proxywall-linux-x64 (newer than src/)" };
  const tmp = mkdtempSync(join(tmpdir(), "proxywall-setup-bench-"));
  const why = existsSync(dist) ? "dist/proxywall-linux-x64 is older than src/" : "dist/proxywall-linux-x64 is missing";
  console.error(`setup: ${why}; building a fresh one into ${tmp}`);
  const b = Bun.spawnSync([BUN, "build.ts", "--target", "linux-x64", "--outdir", tmp], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 300_000 });
  const bin = join(tmp, "proxywall-linux-x64");
  if (b.exitCode !== 0 || !existsSync(bin)) {
    console.error(`setup: build failed (exit ${b.exitCode}), measuring from source only:\n${b.stderr.toString().trim()}`);
    return { bin: null, tmp, note: `build failed (${why})` };
  }
  return { bin, tmp, note: `built for this run (${why})` };
}

// ---- main ---------------------------------------------------------------------------------------------

interface PwSample {
  ms: number;
  setupMs: number | null;
  steps: Record<string, number>;
  failed: string | null;
  backend: string | null;
}

async function runProxywall(pw: Proxywall, leftovers: Leftovers): Promise<PwSample> {
  const r = await runWithDeadline(runArgv(pw, ["true"]), RUN_DEADLINE_MS, { env: { PROXYWALL_DEBUG: "1" } });
  leftovers.trackEvents(r.events);
  const ready = r.events.find((e) => e.event === "sandbox_ready");
  const closed = r.events.find((e) => e.event === "sandbox_closed");
  const steps: Record<string, number> = {};
  for (const m of r.stderr.matchAll(/^proxywall: setup: (.+) ([0-9.]+) ms$/gm)) steps[m[1]!.replace(/ \(.*\)$/, "")] = Number(m[2]);
  let failed: string | null = null;
  if (r.timedOut) failed = "deadline";
  else if (r.code !== 0 || !ready) failed = `exit ${r.code}: ${r.stderr.split("\n").filter((l) => l.startsWith("proxywall: error")).slice(-1)[0] ?? ""}`;
  else if (closed && Array.isArray(closed.cleanup) && closed.cleanup.length > 0) failed = `cleanup: ${JSON.stringify(closed.cleanup)}`;
  return { ms: r.wallMs, setupMs: typeof ready?.setup_ms === "number" ? ready.setup_ms : null, steps, failed, backend: typeof ready?.backend === "string" ? ready.backend : null };
}

/**
 * A run that could not build its sandbox (exit 3, before CMD) is tried again, 3 tries at most, and
 * only the try that worked is timed: another checkout's live sandbox in the same slot number holds
 * the same IPv6 host address, and so the proxy port, for as long as it runs (EADDRINUSE).
 */
async function runProxywallRetrying(pw: Proxywall, leftovers: Leftovers, retried: string[]): Promise<PwSample> {
  let s = await runProxywall(pw, leftovers);
  for (let a = 2; a <= 3 && s.failed?.startsWith("exit 3:"); a++) {
    retried.push(s.failed);
    await Bun.sleep(1000);
    s = await runProxywall(pw, leftovers);
  }
  return s;
}

async function main(): Promise<number> {
  requireRootLinux("setup");
  const leftovers = new Leftovers();
  const built = compiledBinary();
  const variants: Proxywall[] = [FROM_SOURCE];
  if (built.bin) variants.push({ name: "compiled binary", argv: [built.bin] });
  const pw = new Map<string, PwSample[]>(variants.map((v) => [v.name, []]));
  const manual: ManualResult[] = [];
  const MANUAL = "one process per step";
  const coldSetup: string[] = [];
  const retried: string[] = [];
  let cold = false;
  let script: Script | null = null;
  let backend: string | null = null;
  try {
    // Cold start where possible: cleanupState removes the directory (after gc of sandboxes whose
    // owner died) unless another benchmark has a live sandbox in it; a fresh directory has no
    // backend memo, so the first run probes like the first run of a boot.
    cleanupState(new Leftovers());
    cold = !existsSync(join(STATE_DIR, "features.json"));
    for (let w = 0; w < WARMUPS; w++) {
      for (const v of variants) {
        const s = await runProxywallRetrying(v, leftovers, retried);
        if (s.failed) throw new Error(`warm-up ${v.name} run failed: ${s.failed}`);
        backend ??= s.backend;
        coldSetup.push(`${v.name} ${fmtMs(s.setupMs ?? NaN)}`);
      }
    }
    if (!backend) throw new Error("the warm-up runs installed no fence");
    const template = dryRun(backend);
    script = perStepScript(template);
    for (let w = 0; w < WARMUPS; w++) {
      const m = runManual(template, leftovers);
      if (m.failed) throw new Error(`warm-up per-step run failed: ${m.failed}`);
    }
    console.error(`setup: ${RUNS} rounds of ${[...variants.map((v) => v.name), MANUAL].join(", ")} (order rotates)`);
    const names = [...variants.map((v) => v.name), MANUAL];
    for (let i = 0; i < RUNS; i++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(i + k) % names.length]!;
        if (name === MANUAL) manual.push(runManual(template, leftovers));
        else pw.get(name)!.push(await runProxywallRetrying(variants.find((v) => v.name === name)!, leftovers, retried));
      }
    }
  } finally {
    if (built.tmp) rmSync(built.tmp, { recursive: true, force: true });
    // Other benchmarks may have live sandboxes in the same state directory: report only ours.
    const left = cleanupOwn(leftovers, leftovers.ids(), POOL);
    if (left.length > 0) console.error(`setup: LEFT BEHIND: ${left.join(", ")}`);
  }

  const ok = <T extends { failed: string | null }>(xs: T[]) => xs.filter((x) => !x.failed);
  const rows: string[][] = [["variant", "n", "median ms", "p90 ms", "setup_ms median", "setup_ms p90", "failed"]];
  for (const v of variants) {
    const s = ok(pw.get(v.name)!);
    const setup = s.map((x) => x.setupMs).filter((x): x is number => x !== null);
    rows.push([`proxywall run -- true (${v.name})`, String(s.length), fmtMs(quantile(s.map((x) => x.ms), 0.5)), fmtMs(quantile(s.map((x) => x.ms), 0.9)), fmtMs(quantile(setup, 0.5)), fmtMs(quantile(setup, 0.9)), String(pw.get(v.name)!.length - s.length)]);
  }
  const m = ok(manual);
  rows.push([`${MANUAL} (${script?.steps.length ?? "?"} processes)`, String(m.length), fmtMs(quantile(m.map((x) => x.ms), 0.5)), fmtMs(quantile(m.map((x) => x.ms), 0.9)), "", "", String(manual.length - m.length)]);

  console.log(`fence backend chosen by proxywall: ${backend}; compiled binary: ${built.note}`);
  if (script) {
    const c = script.counts;
    console.log(`per-step script (mirrors run --dry-run --backend ${backend}): ${c["host ip"]} host ip, ${c["namespace ip"]} ip -n, ${c.firewall} firewall, ${c.CMD} nsenter true, ${c.teardown} teardown = ${script.steps.length} processes`);
  }
  console.log(`setup_ms of the ${WARMUPS} warm-up rounds (${cold ? "the first starts with no backend memo, as the first run of a boot" : "a backend memo was already there: no cold run"}): ${coldSetup.join(", ")}`);
  console.log("");
  console.log(table(rows));
  console.log("");
  const manualMedian = quantile(m.map((x) => x.ms), 0.5);
  for (const v of variants) {
    const med = quantile(ok(pw.get(v.name)!).map((x) => x.ms), 0.5);
    const verdict = med < manualMedian ? "proxywall is faster" : "proxywall is NOT faster";
    console.log(`per-step / proxywall (${v.name}), medians: ${fmtRatio(manualMedian / med)}  (${verdict}; target: faster)`);
  }

  // Where the time goes, medians per phase.
  const phaseRows: string[][] = [["where", "median ms"]];
  for (const v of variants) {
    const s = ok(pw.get(v.name)!);
    const keys = [...new Set(s.flatMap((x) => Object.keys(x.steps)))];
    for (const k of keys) phaseRows.push([`${v.name}: ${k}`, fmtMs(quantile(s.map((x) => x.steps[k] ?? 0), 0.5))]);
    phaseRows.push([`${v.name}: wall - setup_ms (start-up, CMD, teardown, exit)`, fmtMs(quantile(s.filter((x) => x.setupMs !== null).map((x) => x.ms - x.setupMs!), 0.5))]);
  }
  for (const p of ["host ip", "namespace ip", "firewall", "CMD", "teardown"]) phaseRows.push([`${MANUAL}: ${p}`, fmtMs(quantile(m.map((x) => x.phases[p] ?? 0), 0.5))]);
  console.log("");
  console.log(table(phaseRows));

  const failures = [...[...pw.values()].flat(), ...manual].filter((x) => x.failed).map((x) => x.failed!);
  if (retried.length > 0) console.log(`\nretried ${retried.length} proxywall run(s) that could not build their sandbox (not timed): ${[...new Set(retried)].join("; ")}`);
  if (failures.length > 0) console.log(`\nfailed runs (left out of the figures): ${[...new Set(failures)].join("; ")}`);
  const total = RUNS * (variants.length + 1);
  return failures.length > total / 2 ? 1 : 0;
}

process.exit(await main());
