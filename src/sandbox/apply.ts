// Applying a sandbox plan to the system, and undoing it. The thin side-effect layer: every
// decision was made in the plan; this runs ip and the firewall tool and reports what failed.
import { existsSync, writeFileSync } from "node:fs";
import { fenceSteps, planSandbox, type Backend, type FenceStep, type SandboxConfig, type SandboxPlan } from "../plan/sandbox-plan.ts";
import { renderNftTable } from "../plan/render-nft.ts";
import { HOLD_QUEUE, type Features, type Rule, type Ruleset } from "../plan/ruleset.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
import { removeFile } from "./state.ts";
import { pidsInNetns } from "../sys/procfs.ts";

export class SetupError extends Error {}

export function ipTool(): string {
  const ip = findTool("ip");
  if (!ip) throw new SetupError("ip (iproute2) not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin: install iproute2");
  return ip;
}

export async function ipBatch(lines: readonly string[], where: { netns?: string; force?: boolean } = {}): Promise<ToolResult> {
  const args = [...(where.force ? ["-force"] : []), "-batch", "-"];
  const text = lines.join("\n") + "\n";
  const ip = ipTool();
  return where.netns ? inNetns(netnsPath(where.netns), () => startTool(ip, args, text)) : startTool(ip, args, text);
}

/** Which firewall tools are there; null when a backend cannot be used at all. */
export function backendTools(backend: Backend): Record<string, string> | null {
  if (backend === "nft") {
    const nft = findTool("nft");
    return nft ? { nft } : null;
  }
  const v4 = findTool("iptables-restore");
  const v6 = findTool("ip6tables-restore");
  return v4 && v6 ? { "iptables-restore": v4, "ip6tables-restore": v6 } : null;
}

export interface BackendChoice {
  backend: Backend;
  tools: Record<string, string>;
}

/** The backends to try, in order: the one asked for, or nft then iptables, whichever are there. */
export function backendCandidates(asked: Backend | undefined): BackendChoice[] {
  return (asked ? [asked] : (["nft", "iptables"] as const)).flatMap((backend) => {
    const tools = backendTools(backend);
    return tools ? [{ backend, tools }] : [];
  });
}

async function runFenceStep(step: FenceStep, tools: Record<string, string>, netns: string, scratch: string, check: boolean): Promise<ToolResult> {
  const tool = tools[step.tool]!;
  let args = step.args;
  let stdin: string | undefined = step.text;
  if (args.includes("{file}")) {
    // nft -f - needs /dev/stdin, which minimal images lack; a file works everywhere.
    writeFileSync(scratch, step.text, { mode: 0o600 });
    args = args.map((a) => (a === "{file}" ? scratch : a));
    stdin = undefined;
  }
  if (check) args = step.tool === "nft" ? ["-c", ...args] : ["-t", ...args];
  try {
    return await inNetns(netnsPath(netns), () => startTool(tool, args, stdin));
  } finally {
    if (stdin === undefined) removeFile(scratch);
  }
}

/** Runs the steps in order; the first failure, or null when all succeeded. */
/** Runs the steps (the two iptables families at once); the first failure, or null. */
async function runFence(steps: FenceStep[], tools: Record<string, string>, netns: string, scratch: string, check = false): Promise<ToolResult | null> {
  const results = await Promise.all(steps.map((step, i) => runFenceStep(step, tools, netns, `${scratch}.${i}`, check)));
  return results.find((r) => r.code !== 0) ?? null;
}

/** A ruleset of one optional rule, to ask the kernel whether it supports that feature. */
function probeRuleset(plan: SandboxPlan, feature: keyof Features): Ruleset {
  const pick: Record<keyof Features, (r: Rule) => boolean> = {
    conntrack: (r) => r.ctState !== undefined,
    log: (r) => r.action.kind === "log",
    limit: (r) => r.action.kind === "log" && r.action.limit !== null,
    queue: (r) => r.action.kind === "queue",
  };
  const rules = [...plan.ruleset.hold, ...plan.ruleset.rules]
    .filter(pick[feature])
    .slice(0, 1)
    .map((r) => ((feature === "log" && r.action.kind === "log") || (feature === "queue" && r.action.kind === "queue") ? { ...r, action: { ...r.action, limit: null } } : r));
  return { rules, hold: [] };
}

export interface FenceResult {
  plan: SandboxPlan;
  backend: Backend;
  missing: (keyof Features)[];
}

/**
 * Whether nft can hold packets (the `queue` expression; some kernels lack nft_queue while the
 * iptables NFQUEUE target works). A check-only run, so it can go in proxywall's own namespace
 * while the sandbox's is being built: expression support is the kernel's, not a namespace's.
 */
export async function nftCanQueue(nft: string): Promise<boolean> {
  const r = await startTool(nft, ["-c", `table inet proxywall_probe { chain c { type filter hook output priority 0; queue num ${HOLD_QUEUE.num} bypass; }; }`]);
  return r.code === 0;
}

/** The candidates in the order to try them, given what is known of nft's queue support. */
export function orderCandidates(candidates: readonly BackendChoice[], nftQueues: boolean | null): BackendChoice[] {
  return nftQueues === false ? [...candidates].sort((a, b) => Number(a.backend === "nft") - Number(b.backend === "nft")) : [...candidates];
}

/** Optional features in the order they are asked about: the rarest to be missing comes last. */
const PROBE_ORDER = ["queue", "log", "conntrack", "limit"] as const;

/**
 * Which optional features `backend` cannot install here (each asked about with a check-only
 * run). With `firstOnly`, stops at the first one missing: enough to know to try another backend.
 */
async function missingFeatures(plan: SandboxPlan, choice: BackendChoice, scratch: string, firstOnly = false): Promise<(keyof Features)[]> {
  const missing: (keyof Features)[] = [];
  for (const feature of PROBE_ORDER) {
    if (!plan.config.features[feature]) continue;
    const probe = probeRuleset(plan, feature);
    if (probe.rules.length === 0) continue;
    const steps = fenceSteps(probe, choice.backend).map((step) =>
      // A check-only run of a bare table: no add/delete preamble for a table that is not there.
      step.tool === "nft" ? { ...step, text: renderNftTable(probe) } : step,
    );
    if (await runFence(steps, choice.tools, plan.names.netns, scratch, true)) {
      missing.push(feature);
      if (firstOnly) break;
    }
  }
  return missing;
}

/**
 * Installs the fence atomically. When the full ruleset is refused, asks the kernel which optional
 * feature is missing; if another backend is left to try (this kernel, say, has the xt NFQUEUE
 * target but no nft queue), that one goes next. If none installs everything, the backend that
 * lacks least installs a ruleset of only what it supports, so that a missing log, queue or
 * conntrack module never costs the rejects.
 */
export async function applyFence(config: SandboxConfig, candidates: readonly BackendChoice[], scratch: string): Promise<FenceResult> {
  const tried: { choice: BackendChoice; plan: SandboxPlan; missing: (keyof Features)[]; complete: boolean }[] = [];
  let firstError: string | null = null;
  for (const [i, choice] of candidates.entries()) {
    const plan = planSandbox({ ...config, backend: choice.backend });
    const failed = await runFence(plan.fence, choice.tools, plan.names.netns, scratch);
    if (!failed) return { plan, backend: choice.backend, missing: [] };
    firstError ??= toolError(`installing the fence with ${choice.backend}`, failed);
    const more = i < candidates.length - 1;
    tried.push({ choice, plan, missing: await missingFeatures(plan, choice, scratch, more), complete: !more });
  }
  for (const t of tried) if (!t.complete && t.missing.length > 0) t.missing = await missingFeatures(t.plan, t.choice, scratch);
  const best = tried.filter((t) => t.missing.length > 0).sort((a, b) => a.missing.length - b.missing.length)[0];
  if (!best) throw new SetupError(firstError ?? "no firewall tool to install the fence with");
  const features = { ...config.features };
  for (const m of best.missing) features[m] = false;
  const plan = planSandbox({ ...config, backend: best.choice.backend, features });
  const failed = await runFence(plan.fence, best.choice.tools, plan.names.netns, scratch);
  if (failed) throw new SetupError(toolError(`installing the fence with ${best.choice.backend}`, failed));
  return { plan, backend: best.choice.backend, missing: best.missing };
}

/** Builds the namespace, then its inside. On failure the caller's teardown removes what was made. */
export async function applyNetwork(plan: SandboxPlan): Promise<void> {
  const host = await ipBatch(plan.hostBatch);
  if (host.code !== 0) throw new SetupError(toolError("creating the namespace (ip -batch)", host));
  const inside = await ipBatch(plan.sandboxBatch, { netns: plan.names.netns });
  if (inside.code !== 0) throw new SetupError(toolError(`configuring ${plan.names.netns} (ip -batch)`, inside));
}

/**
 * Ends every process still inside the sandbox namespace, then removes the namespace (its links and
 * rules go with it). What CMD left running (a daemon, a background job; or CMD itself after
 * proxywall was SIGKILLed) would otherwise live on, without a network, in a namespace nobody owns.
 */
export async function removeSandbox(netns: string, teardown: readonly string[]): Promise<{ killed: number; left: string[] }> {
  const pids = existsSync(netnsPath(netns)) ? pidsInNetns(netnsPath(netns)) : [];
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await ipBatch(teardown, { force: true }).catch(() => null);
  return { killed: pids.length, left: existsSync(netnsPath(netns)) ? [`namespace ${netns}`] : [] };
}
