// Which firewall tool installs the fence, and which optional features go into it: decided once,
// before the plan, by check-only runs that never touch a namespace's rules. `run` and `doctor` both
// ask here, so they cannot disagree.
//
// Contract (session/steps call it so):
//   const choosing = chooseFence({ backend: cfg.backend, logs: ["nflog", "kmsg"], hold: true });
//     // start it first: it runs nft -c / iptables-restore -t in proxywall's own namespace, in
//     // parallel with building the sandbox's; it throws SetupError (tool's own words) when no
//     // tool can install even the rejects.
//   const c = await choosing;
//   const { features, missing } = c.byLog[watch.logKind];   // one `degraded` line per missing
//   plan = planSandbox({ ...config, backend: c.backend, features });
//   await installFence(c, plan.fence, netns, scratch);       // install.ts
//
// The tools, fastest first where they can do everything (measured, fresh namespace, kernel 6.18,
// proxywall's whole fence with the hold, spawned in the namespace with setns):
//   nft -f (one atomic batch)                         3-5 ms (this kernel lacks nft `queue`)
//   iptables-legacy-restore + ip6tables-legacy-restore, at once   5-8 ms
//   iptables-restore + ip6tables-restore of iptables-nft 1.8.9    45-85 ms (its own cache and
//     compat translation; at once or one after the other alike)
// And the check-only runs themselves: `iptables-legacy-restore -t` of both families 5-10 ms; `nft -c`
// 15-30 ms where a wanted expression is missing (the kernel tries to load its module, nft_queue
// here, through modprobe first), which a run would wait for before installing anything.
// So: the legacy x_tables tools where the kernel has legacy ip_tables and they hold every wanted
// feature (the xt NFQUEUE target works there when nft has no queue), and then nft is not asked;
// else nft; else the system's iptables-restore (usually iptables-nft). Where none holds
// everything, the one that lacks least (the first of equals, in that order), so a missing log,
// queue or conntrack module never costs the rejects. doctor asks them all, in the same order.
import { existsSync, realpathSync } from "node:fs";
import { diag } from "../diag.ts";
import type { Features, LogTarget } from "../plan/ruleset.ts";
import type { Backend, FenceStep } from "../plan/sandbox-plan.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
import { SetupError } from "../sandbox/apply.ts";
import { featuresFor, iptablesProbeText, iptablesRefused, missingExtensions, nftProbeText, nftRefused, probeRules, unsupportedKeys, type Probe, type ProbeKey, type WatchLog } from "./probes.ts";

export type { WatchLog } from "./probes.ts";

/** Which build of which tool: nft, the legacy x_tables restore tools, or the system's iptables-restore. */
export type Flavour = "nft" | "iptables-legacy" | "iptables";

export type FenceTools = Partial<Record<FenceStep["tool"], string>>;

export interface FenceWants {
  /** --backend, or undefined to let this kernel's support decide. */
  backend?: Backend;
  /** The log targets the fence may carry, likeliest first (the watch is opened later); [] for none. */
  logs: readonly WatchLog[];
  /** Hold TCP SYNs in an NFQUEUE (with the NFLOG log). */
  hold: boolean;
}

export interface FeatureSet {
  features: Features;
  /** Wanted but not supported here: each is a `degraded` line. */
  missing: (keyof Features)[];
}

/** What one tool answered. */
export interface Probed {
  flavour: Flavour;
  backend: Backend;
  /** The tool(s), for messages: "nft", "iptables-legacy-restore + ip6tables-legacy-restore". */
  label: string;
  tools: FenceTools | null;
  /** Why this tool cannot install the fence at all (the tool's own words); null when it can. */
  unusable: string | null;
  /** Optional features (or log targets) the kernel refused through this tool, with the tool's words. */
  unsupported: Map<ProbeKey, string>;
  ms: number;
}

export interface FenceChoice extends FeatureSet {
  backend: Backend;
  flavour: Flavour;
  label: string;
  tools: FenceTools;
  /** Environment the tools need (the xtables lock, see XTABLES_ENV). */
  env: Record<string, string>;
  /** The features for each log kind the watch may end up with; the top-level pair is for logs[0]. */
  byLog: Record<LogTarget["kind"], FeatureSet>;
  /** Every tool asked, in order of preference. */
  probed: Probed[];
}

/**
 * The legacy tools take a lock file (default /run/xtables.lock, which needs a writable /run, or
 * they fail: "Fatal: can't open lock file") shared with every iptables user on the host. The
 * sandbox's tables have no other writer, so the lock is one nobody else takes: /dev/null opens
 * everywhere, read-only file systems included, and flock(2) works on it.
 */
export const XTABLES_ENV = { XTABLES_LOCKFILE: "/dev/null" };

interface Candidate {
  flavour: Flavour;
  backend: Backend;
  label: string;
  tools: FenceTools | null;
  /** Why the candidate cannot be used before anything runs (tools or kernel support missing). */
  absent: string | null;
}

const PACKAGE = { nft: "the nftables package (apt-get install nftables; apk add nftables)", iptables: "the iptables package (apt-get install iptables; apk add iptables)" };

function pair(v4: string, v6: string): { tools: FenceTools | null; missing: string[] } {
  const a = findTool(v4);
  const b = findTool(v6);
  return { tools: a && b ? { "iptables-restore": a, "ip6tables-restore": b } : null, missing: [...(a ? [] : [v4]), ...(b ? [] : [v6])] };
}

const real = (p: string | undefined) => {
  try {
    return p ? realpathSync(p) : null;
  } catch {
    return p ?? null;
  }
};

/** The tools to ask, in order of preference (see the table at the top). */
export function candidates(asked: Backend | undefined): Candidate[] {
  const out: Candidate[] = [];
  const legacy = pair("iptables-legacy-restore", "ip6tables-legacy-restore");
  if (asked !== "nft") {
    const kernel = existsSync("/proc/net/ip_tables_names") && existsSync("/proc/net/ip6_tables_names");
    out.push({
      flavour: "iptables-legacy",
      backend: "iptables",
      label: "iptables-legacy-restore + ip6tables-legacy-restore",
      tools: legacy.tools,
      absent: !legacy.tools
        ? `${legacy.missing.join(" and ")} not found (${PACKAGE.iptables} has them)`
        : !kernel
          ? "the kernel has no legacy x_tables (/proc/net/ip_tables_names or ip6_tables_names is absent: ip_tables and ip6_tables are not loaded or not built)"
          : null,
    });
  }
  if (asked !== "iptables") {
    const nft = findTool("nft");
    out.push({ flavour: "nft", backend: "nft", label: "nft", tools: nft ? { nft } : null, absent: nft ? null : `nft not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin: install ${PACKAGE.nft}` });
  }
  if (asked !== "nft") {
    const system = pair("iptables-restore", "ip6tables-restore");
    // The system's tools may be the legacy ones themselves (no -legacy names on older systems).
    const same = system.tools && legacy.tools && real(system.tools["iptables-restore"]) === real(legacy.tools["iptables-restore"]);
    if (!same) {
      out.push({
        flavour: "iptables",
        backend: "iptables",
        label: "iptables-restore + ip6tables-restore",
        tools: system.tools,
        absent: system.tools ? null : `${system.missing.join(" and ")} not found: install ${PACKAGE.iptables}`,
      });
    }
  }
  return out;
}

/** nft -c of the probe table, in proxywall's own namespace: expression support is the kernel's. */
async function probeNft(nft: string, probes: readonly Probe[]): Promise<Map<number, string> | ToolResult> {
  const text = nftProbeText(probes);
  // As the fence itself is fed (see fenceSteps): a script given as an argument gets no line numbers.
  const r = await startTool(nft, ["-c", "-f", "/proc/self/fd/0"], text);
  return r.code === 0 ? new Map() : (nftRefused(probes, text, r.stderr) ?? r);
}

/** iptables-restore -t of both families at once; each warning names an extension the kernel lacks. */
async function probeXtables(tools: FenceTools, probes: readonly Probe[]): Promise<Map<number, string> | ToolResult> {
  const families = [
    ["ipv4", tools["iptables-restore"]!],
    ["ipv6", tools["ip6tables-restore"]!],
  ] as const;
  const runs = await Promise.all(families.map(([family, tool]) => startTool(tool, ["-t"], iptablesProbeText(probes, family), XTABLES_ENV)));
  const failed = runs.find((r) => r.code !== 0);
  if (failed) return failed;
  const refused = new Map<number, string>();
  families.forEach(([family], i) => {
    for (const [n, said] of iptablesRefused(probes, family, missingExtensions(runs[i]!.stderr))) refused.set(n, said);
  });
  return refused;
}

async function probeOne(c: Candidate, probes: readonly Probe[]): Promise<Probed> {
  const t0 = performance.now();
  const base = { flavour: c.flavour, backend: c.backend, label: c.label, tools: c.tools };
  if (c.absent || !c.tools) return { ...base, unusable: c.absent ?? "no tools", unsupported: new Map(), ms: 0 };
  const r = c.flavour === "nft" ? await probeNft(c.tools.nft!, probes) : await probeXtables(c.tools, probes);
  const ms = performance.now() - t0;
  if (!(r instanceof Map)) return { ...base, unusable: toolError("a check-only run", r), unsupported: new Map(), ms };
  const unsupported = unsupportedKeys(probes, r);
  const core = unsupported.get("core");
  return { ...base, unsupported, unusable: core ? `${c.label} cannot install the rejects here: ${core}` : null, ms };
}

const LOG_KINDS = ["nflog", "kmsg", "none"] as const;

function complete(p: Probed, wants: FenceWants): boolean {
  return !p.unusable && featuresFor(p.unsupported, wants.logs[0] ?? "none", wants.hold).missing.length === 0;
}

/**
 * Asks the candidates (check-only) in order until one holds everything; with `all` (doctor's
 * report), every one of them at once.
 */
export async function probeFence(wants: FenceWants, all = false): Promise<Probed[]> {
  const probes = probeRules(wants);
  const list = candidates(wants.backend);
  if (all) return Promise.all(list.map((c) => probeOne(c, probes)));
  // One after another, in order, until one holds everything: nft's check costs most where it
  // lacks something (see the top), and is not needed where the legacy tools hold it all.
  const probed: Probed[] = [];
  for (const c of list) {
    const p = await probeOne(c, probes);
    probed.push(p);
    if (complete(p, wants)) break;
  }
  return probed;
}

/** The first that holds everything wanted; else the one that lacks least; null when none works. */
export function pickFence(wants: FenceWants, probed: readonly Probed[]): FenceChoice | null {
  const usable = probed.filter((p) => !p.unusable && p.tools);
  const missing = (p: Probed) => featuresFor(p.unsupported, wants.logs[0] ?? "none", wants.hold).missing.length;
  const best = usable.reduce<Probed | null>((b, p) => (b === null || missing(p) < missing(b) ? p : b), null);
  if (!best) return null;
  // A log kind never asked about is not known to work: its plan carries no log step.
  const byLog = Object.fromEntries(
    LOG_KINDS.map((k) => [k, featuresFor({ has: (key) => best.unsupported.has(key) || (key === k && !wants.logs.includes(k as WatchLog)) }, k, wants.hold)]),
  ) as Record<LogTarget["kind"], FeatureSet>;
  const top = byLog[wants.logs[0] ?? "none"];
  return { ...top, backend: best.backend, flavour: best.flavour, label: best.label, tools: best.tools!, env: best.backend === "iptables" ? XTABLES_ENV : {}, byLog, probed: [...probed] };
}

/** Why no tool can install the fence, one clause per tool asked. */
export function noFenceReason(probed: readonly Probed[]): string {
  return probed.map((p) => `${p.label}: ${p.unusable}`).join("; ") || "no firewall tool to ask";
}

/** What a run asks about, by its --monitor (the watch opens later; auto may end with the kernel log). */
export function runWants(backend: Backend | undefined, monitor: "auto" | "nflog" | "kmsg" | "dmesg" | "off"): FenceWants {
  const logs: WatchLog[] = monitor === "off" ? [] : monitor === "auto" ? ["nflog", "kmsg"] : monitor === "nflog" ? ["nflog"] : ["kmsg"];
  return { backend, logs, hold: logs.includes("nflog") };
}

/** probeFence + pickFence; throws SetupError, with each tool's own words, when none works. */
export async function chooseFence(wants: FenceWants): Promise<FenceChoice> {
  const t0 = performance.now();
  const probed = await probeFence(wants);
  const choice = pickFence(wants, probed);
  diag.debug(`fence: chose ${choice?.label ?? "nothing"} in ${(performance.now() - t0).toFixed(1)} ms (${probed.map((p) => `${p.label} ${p.ms.toFixed(1)} ms${p.unusable ? ", unusable" : p.unsupported.size > 0 ? `, lacks ${[...p.unsupported.keys()].join(" ")}` : ""}`).join("; ")})`);
  if (!choice) throw new SetupError(`no firewall tool can install the fence: ${noFenceReason(probed)}`);
  return choice;
}
