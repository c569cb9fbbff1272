// Applying a sandbox plan to the system, and undoing it. The thin side-effect layer: every
// decision was made in the plan; this runs ip and the firewall tool and reports what failed.
import { existsSync, writeFileSync } from "node:fs";
import { planSandbox, type Backend, type FenceStep, type SandboxConfig, type SandboxPlan } from "../plan/sandbox-plan.ts";
import { renderNft } from "../plan/render-nft.ts";
import { renderIptables } from "../plan/render-iptables.ts";
import type { Features, Rule, Ruleset } from "../plan/ruleset.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
import { removeFile } from "./state.ts";

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

export function chooseBackend(asked: Backend | undefined): { backend: Backend; tools: Record<string, string> } | null {
  for (const b of asked ? [asked] : (["nft", "iptables"] as const)) {
    const tools = backendTools(b);
    if (tools) return { backend: b, tools };
  }
  return null;
}

async function runFenceStep(step: FenceStep, tools: Record<string, string>, netns: string, scratch: string, check = false): Promise<ToolResult> {
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

async function runFence(steps: FenceStep[], tools: Record<string, string>, netns: string, scratch: string, check = false): Promise<ToolResult | null> {
  for (const step of steps) {
    const r = await runFenceStep(step, tools, netns, scratch, check);
    if (r.code !== 0) return r;
  }
  return null;
}

/** A ruleset of one optional rule, to ask the kernel whether it supports that feature. */
function probeRuleset(plan: SandboxPlan, feature: keyof Features): Ruleset {
  const pick: Record<keyof Features, (r: Rule) => boolean> = {
    conntrack: (r) => r.ctState !== undefined,
    log: (r) => r.action.kind === "log",
    limit: (r) => r.action.kind === "log" && r.action.limit !== null,
  };
  const rules = plan.ruleset.rules
    .filter(pick[feature])
    .slice(0, 1)
    .map((r) => (feature === "log" && r.action.kind === "log" ? { ...r, action: { ...r.action, limit: null } } : r));
  return { rules };
}

export interface FenceResult {
  plan: SandboxPlan;
  missing: (keyof Features)[];
}

/**
 * Installs the fence atomically. If the full ruleset is refused, asks the kernel about each
 * optional feature and installs a ruleset of only the supported ones, so that a missing log
 * or conntrack module never costs the rejects.
 */
export async function applyFence(config: SandboxConfig, tools: Record<string, string>, scratch: string): Promise<FenceResult> {
  let plan = planSandbox(config);
  const first = await runFence(plan.fence, tools, plan.names.netns, scratch);
  if (!first) return { plan, missing: [] };
  const missing: (keyof Features)[] = [];
  for (const feature of ["conntrack", "log", "limit"] as const) {
    if (!config.features[feature]) continue;
    if (feature === "limit" && missing.includes("log")) continue;
    const probe = probeRuleset(plan, feature);
    if (probe.rules.length === 0) continue;
    const steps = config.backend === "nft"
      ? [{ tool: "nft" as const, args: ["-f", "{file}"], text: renderNft(probe).replace(/^add table.*\ndelete table.*\n/, "") }]
      : [
          { tool: "iptables-restore" as const, args: [], text: renderIptables(probe, "ipv4") },
          { tool: "ip6tables-restore" as const, args: [], text: renderIptables(probe, "ipv6") },
        ];
    if (await runFence(steps, tools, plan.names.netns, scratch, true)) missing.push(feature);
  }
  if (missing.length === 0) throw new SetupError(toolError(`installing the fence with ${config.backend}`, first));
  const features = { ...config.features };
  for (const m of missing) features[m] = false;
  plan = planSandbox({ ...config, features });
  const second = await runFence(plan.fence, tools, plan.names.netns, scratch);
  if (second) throw new SetupError(toolError(`installing the fence with ${config.backend}`, second));
  return { plan, missing };
}

/** Builds namespace and link. On failure the caller's teardown removes what was made. */
export async function applyNetwork(plan: SandboxPlan): Promise<void> {
  const host = await ipBatch(plan.hostBatch);
  if (host.code !== 0) throw new SetupError(toolError("creating the namespace and veth pair (ip -batch)", host));
  const inside = await ipBatch(plan.sandboxBatch, { netns: plan.names.netns });
  if (inside.code !== 0) throw new SetupError(toolError(`configuring ${plan.names.netns} (ip -batch)`, inside));
}

/** Removes link and namespace; tolerant of either being gone. Returns what is still there. */
export async function removeNetwork(teardownBatch: readonly string[], netns: string, hostIf: string): Promise<string[]> {
  await ipBatch(teardownBatch, { force: true }).catch(() => null);
  const left: string[] = [];
  if (existsSync(netnsPath(netns))) left.push(`namespace ${netns}`);
  if (existsSync(`/sys/class/net/${hostIf}`)) left.push(`link ${hostIf}`);
  return left;
}
