// The one-process-per-step way of building a sandbox, for bench/setup.ts: a `proxywall run
// --dry-run` text turned into one command per line of it, the way a shell script would do it,
// and run under a fresh sandbox id:
//   - each `ip -batch` line as its own `ip` (inside the namespace: `ip -n NS`);
//   - each iptables-restore `-A` line as its own `nsenter --net=/run/netns/NS iptables -w 5 -t
//     TABLE -A ...` (a non-ACCEPT chain policy as `-P`); nft: `nft add table`, `nft add chain`,
//     one `nft add rule` per rule;
//   - `nsenter --net=/run/netns/NS true` for CMD, then the teardown lines, each its own `ip`.
// Two plans are run so: today's (`run --dry-run` of this checkout: a namespace with no host side)
// and the seed's (commit 4284f55, recorded in bench/fixtures/seed-dry-run-*.txt: a host-side veth
// with addresses of a /30 from a pool). The seed's host side gets a /30 that no route on this
// machine overlaps, checked before every run; its link and namespace are removed even when a step
// fails.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FROM_SOURCE, randomId, requireTool, ROOT } from "./support.ts";

export type Phase = "own-namespace ip" | "inside ip" | "fence" | "CMD" | "teardown";
export const PHASES: readonly Phase[] = ["own-namespace ip", "inside ip", "fence", "CMD", "teardown"];

interface Step {
  phase: Phase;
  argv: string[];
}

export interface Script {
  netns: string;
  /** The host side of the seed's veth (null for today's plan, which has none). */
  hostLink: string | null;
  steps: Step[];
  counts: Record<Phase, number>;
}

/** Shell-like words: whitespace-separated, double quotes group (and are removed). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let cur: string | null = null;
  let last = 0;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const w = m[1] ?? m[2]!;
    if (m.index === last && cur !== null) cur += w;
    else {
      if (cur !== null) out.push(cur);
      cur = w;
    }
    last = m.index + m[0].length;
  }
  if (cur !== null) out.push(cur);
  return out;
}

type Section = { kind: "own" } | { kind: "teardown" } | { kind: "inside-ip"; ns: string } | { kind: "fence"; ns: string; tool: string } | null;

/** The section a `# ...:` head line opens: today's "proxywall's own namespace", the seed's "host". */
function sectionOf(line: string): Section | undefined {
  const head = /^# (host|proxywall's own namespace|teardown, host|teardown, proxywall's own namespace|inside (\S+)): (.*)$/.exec(line);
  if (!head) return line.startsWith("#") ? null : undefined;
  if (head[1]!.startsWith("teardown")) return { kind: "teardown" };
  if (!head[2]) return { kind: "own" };
  const what = head[3]!;
  return what.startsWith("ip ") ? { kind: "inside-ip", ns: head[2] } : { kind: "fence", ns: head[2], tool: what.split(/[ ,]/)[0]! };
}

/** Turns the fence part of a dry run into one firewall command per rule (see the header). */
class FenceSteps {
  private table = "filter";
  private chain: string | null = null;
  private nftTableAdded = false;
  constructor(private readonly out: Step[]) {}

  /** A new fence section starts (iptables-restore, then ip6tables-restore, each from *filter). */
  reset(): void {
    this.table = "filter";
    this.chain = null;
  }

  line(ns: string, tool: string, line: string): void {
    const enter = [requireTool("nsenter", true), `--net=/run/netns/${ns}`];
    const push = (...argv: string[]) => this.out.push({ phase: "fence", argv: [...enter, ...argv] });
    if (tool === "iptables-restore" || tool === "ip6tables-restore") {
      const bin = requireTool(tool === "iptables-restore" ? "iptables" : "ip6tables", true);
      if (line.startsWith("*")) this.table = line.slice(1);
      else if (line.startsWith(":")) {
        const [c, policy] = line.slice(1).split(/\s+/);
        if (policy && policy !== "ACCEPT" && policy !== "-") push(bin, "-w", "5", "-t", this.table, "-P", c!, policy);
      } else if (line.startsWith("-A ")) push(bin, "-w", "5", "-t", this.table, ...words(line));
      else if (line !== "COMMIT") throw new Error(`unexpected ${tool} line in the dry run: ${line}`);
      return;
    }
    if (tool !== "nft") throw new Error(`unknown fence tool in the dry run: ${tool}`);
    const nft = requireTool("nft", true);
    const t = /^table (\S+ \S+) \{$/.exec(line);
    const c = /^chain (\S+) \{$/.exec(line);
    if (/^(add|delete) table /.test(line)) return; // the seed's replace-in-one-batch preamble
    if (t) {
      if (!this.nftTableAdded) push(nft, `add table ${t[1]}`);
      this.nftTableAdded = true;
      this.table = t[1]!;
    } else if (c) this.chain = c[1]!;
    else if (line === "}") this.chain = null;
    else if (this.chain && line.startsWith("type ")) push(nft, `add chain ${this.table} ${this.chain} { ${line} }`);
    else if (this.chain) push(nft, `add rule ${this.table} ${this.chain} ${line}`);
    else throw new Error(`unexpected nft line in the dry run: ${line}`);
  }
}

/** Turns `run --dry-run` output (today's or the seed's) into one command per line of it. */
export function perStepScript(dryRun: string): Script {
  const ip = requireTool("ip", true);
  const steps: Step[] = [];
  const teardown: Step[] = [];
  const fence = new FenceSteps(steps);
  let netns = "";
  let hostLink: string | null = null;
  let section: Section = null;
  for (const raw of dryRun.split("\n")) {
    const line = raw.trim();
    const head = sectionOf(line);
    if (head !== undefined) {
      section = head;
      fence.reset();
      continue;
    }
    if (!line || !section) continue;
    const w = words(line);
    if (section.kind === "own") {
      steps.push({ phase: "own-namespace ip", argv: [ip, ...w] });
      if (w[0] === "netns" && w[1] === "add") netns = w[2]!;
      if (w[0] === "link" && w[1] === "add") hostLink = w[2]!;
    } else if (section.kind === "teardown") teardown.push({ phase: "teardown", argv: [ip, ...w] });
    else if (section.kind === "inside-ip") steps.push({ phase: "inside ip", argv: [ip, "-n", section.ns, ...w] });
    else fence.line(section.ns, section.tool, line);
  }
  if (!netns || teardown.length === 0) throw new Error("the dry run did not show the namespace and the teardown");
  steps.push({ phase: "CMD", argv: [requireTool("nsenter", true), `--net=/run/netns/${netns}`, "true"] }, ...teardown);
  const counts = Object.fromEntries(PHASES.map((p) => [p, steps.filter((s) => s.phase === p).length])) as Record<Phase, number>;
  return { netns, hostLink, steps, counts };
}

export interface PerStepResult {
  ms: number;
  phases: Partial<Record<Phase, number>>;
  failed: string | null;
}

function stepError(s: Step, p: { exitCode: number | null; stderr: Buffer }): string {
  const argv = s.argv[0]!.endsWith("nsenter") ? s.argv.slice(2) : s.argv;
  return `${argv.join(" ")}: exit ${p.exitCode}: ${p.stderr.toString().trim().split("\n").slice(-1)[0]}`;
}

/**
 * Runs a script once, timing each phase; the teardown runs even after a failed step, and whatever
 * of the namespace and host link is still there afterwards is removed (untimed) and reported.
 */
export function runPerStep(script: Script): PerStepResult {
  const phases: Partial<Record<Phase, number>> = {};
  let failed: string | null = null;
  const run = (s: Step) => {
    const t = performance.now();
    const p = Bun.spawnSync(s.argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    phases[s.phase] = (phases[s.phase] ?? 0) + (performance.now() - t);
    if (p.exitCode !== 0) failed ??= stepError(s, p);
    return p.exitCode === 0;
  };
  const t0 = performance.now();
  try {
    for (const s of script.steps) if (s.phase !== "teardown" && !run(s)) break;
  } finally {
    for (const s of script.steps) if (s.phase === "teardown") run(s);
  }
  const ms = performance.now() - t0;
  const ip = requireTool("ip", true);
  if (script.hostLink && existsSync(`/sys/class/net/${script.hostLink}`)) Bun.spawnSync([ip, "link", "del", script.hostLink], { timeout: 10_000 });
  if (existsSync(`/run/netns/${script.netns}`)) Bun.spawnSync([ip, "netns", "del", script.netns], { timeout: 10_000 });
  return { ms, phases, failed };
}

/** The sandbox id a dry run names ("# proxywall run --dry-run: sandbox ID ..."). */
function dryRunId(text: string): string {
  const id = /^# proxywall run --dry-run: sandbox ([0-9a-f]{8})/m.exec(text)?.[1];
  if (!id) throw new Error("no sandbox id in the dry run");
  return id;
}

/** The dry run with a fresh sandbox id in place of its own: names of namespace, links, log prefix. */
export function withFreshId(text: string): string {
  return text.replaceAll(dryRunId(text), randomId());
}

/** Today's plan: `proxywall run --dry-run --backend B -- true` of this checkout. */
export function todaysDryRun(backend: string): string {
  const p = Bun.spawnSync([...FROM_SOURCE.argv, "run", "--dry-run", "--backend", backend, "--", "true"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  if (p.exitCode !== 0) throw new Error(`run --dry-run failed (exit ${p.exitCode}): ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

/** The seed's recorded `run --dry-run --backend B` (bench/fixtures), without the "##" notes. */
export function seedDryRun(backend: string): string {
  const text = readFileSync(join(import.meta.dir, "fixtures", `seed-dry-run-${backend}.txt`), "utf8");
  return text
    .split("\n")
    .filter((l) => !l.startsWith("##"))
    .join("\n");
}

// ---- a host-side /30 for the seed's plan that clashes with nothing --------------------------------

/** The seed's first slot, as its dry run prints it: 10.200.0.0/30 and the /64 that spells it. */
const SEED_V4 = "10.200.0.";
const SEED_V6 = "fd70:7077:ac8::";

function addrBits(a: string): { v6: boolean; n: bigint } {
  if (!a.includes(":")) return { v6: false, n: a.split(".").reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n) };
  const [head, tail] = a.includes("::") ? a.split("::") : [a, null];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return { v6: true, n: groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g || "0", 16)), 0n) };
}

/** Whether two prefixes (ADDR or ADDR/LEN) of the same family share any address. */
function overlaps(a: string, b: string): boolean {
  const [pa, pb] = [a, b].map((c) => {
    const [addr, len] = c.split("/");
    const bits = addrBits(addr!);
    return { ...bits, len: len === undefined ? (bits.v6 ? 128 : 32) : Number(len) };
  });
  if (pa!.v6 !== pb!.v6) return false;
  const width = pa!.v6 ? 128n : 32n;
  const shift = width - BigInt(Math.min(pa!.len, pb!.len));
  return pa!.n >> shift === pb!.n >> shift;
}

/** Every route destination on this machine, both families, all tables (not the defaults). */
function routeDestinations(): string[] {
  const ip = requireTool("ip", true);
  const out: string[] = [];
  for (const fam of ["-4", "-6"]) {
    const p = Bun.spawnSync([ip, "-j", fam, "route", "show", "table", "all"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    if (p.exitCode !== 0) throw new Error(`ip -j ${fam} route show table all: exit ${p.exitCode}`);
    for (const r of JSON.parse(p.stdout.toString() || "[]") as { dst?: string }[]) if (r.dst && r.dst !== "default" && /^[0-9a-f.:]+(\/\d+)?$/.test(r.dst)) out.push(r.dst);
  }
  return out;
}

/**
 * The seed's dry run moved to a host-side /30 that no route on this machine overlaps (10.203.S.0/30
 * with S from 128, and fd70:7077:acb:S00::/64, spelt from it as the seed spelt its /64s), under a
 * fresh id. Checked before every run: another benchmark or checkout may be using one meanwhile.
 */
export function seedPlanOnFreeSlot(seed: string): { text: string; slot: string } {
  const routes = routeDestinations();
  for (let s = 128; s < 256; s++) {
    const v4 = `10.203.${s}.0/30`;
    const v6 = `fd70:7077:acb:${(s * 256).toString(16)}::/64`;
    if (routes.some((r) => overlaps(r, v4) || overlaps(r, v6))) continue;
    const text = withFreshId(seed).replaceAll(SEED_V4, `10.203.${s}.`).replaceAll(SEED_V6, v6.replace("/64", ""));
    return { text, slot: `${v4} + ${v6}` };
  }
  throw new Error("no free /30 in 10.203.128.0/17 for the seed's host side");
}
