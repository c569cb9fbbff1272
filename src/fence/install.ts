// Installing the planned fence in a sandbox namespace with the tools select.ts chose. One attempt:
// every decision (tool, features) was made before the plan; a failure here is reported in the
// tool's own words and never answered by planning again.

import { diag } from "../diag.ts";
import type { FenceStep } from "../plan/sandbox-plan.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
import { SetupError } from "../sandbox/apply.ts";
import { existsSync, readFileSync } from "node:fs";
import type { FenceChoice } from "./select.ts";

function runStep(step: FenceStep, fence: Pick<FenceChoice, "tools" | "env">, nsPath: string): Promise<ToolResult> {
  const tool = fence.tools[step.tool];
  if (!tool) return Promise.resolve({ code: -1, stdout: "", stderr: `no ${step.tool} among the chosen tools` });
  return inNetns(nsPath, () => startTool(tool, step.args, step.text, fence.env));
}

/**
 * Runs the plan's fence steps in the namespace `netns` (a name, as in /run/netns), all at once
 * (the two iptables families are independent); throws SetupError naming the tool and quoting it.
 * The namespace must hold no proxywall fence yet (a sandbox's is always new): the nft script
 * adds its table, it does not replace one.
 */
export async function installFence(fence: Pick<FenceChoice, "tools" | "env" | "label">, steps: readonly FenceStep[], netns: string): Promise<void> {
  const nsPath = netnsPath(netns);
  const t0 = performance.now();
  const results = await Promise.all(steps.map((step) => runStep(step, fence, nsPath)));
  diag.debug(`fence: installed with ${fence.label} in ${(performance.now() - t0).toFixed(1)} ms`);
  const failed = results.findIndex((r) => r.code !== 0);
  if (failed >= 0) throw new SetupError(toolError(`installing the fence with ${fence.tools[steps[failed]!.tool] ?? steps[failed]!.tool}`, results[failed]!));
}

/**
 * iptables-save and ip6tables-save of the build that holds the namespace's fence: the legacy
 * tools when the namespace has legacy tables (the two builds do not see each other's rules).
 * Null when they are not installed.
 */
export function iptablesSaveTools(nsPath: string): [string, string] | null {
  const legacy = inNetns(nsPath, () => existsSync("/proc/thread-self/net/ip_tables_names") && readFileSync("/proc/thread-self/net/ip_tables_names", "utf8").trim() !== "");
  const names = legacy ? ["iptables-legacy-save", "ip6tables-legacy-save"] : ["iptables-save", "ip6tables-save"];
  const tools = names.map((n) => findTool(n));
  return tools[0] && tools[1] ? [tools[0], tools[1]] : null;
}
