// Applying a sandbox plan to the system, and undoing it. The thin side-effect layer: every
// decision was made in the plan; this runs ip and reports what failed. The fence: src/fence/.
import { existsSync } from "node:fs";
import type { SandboxPlan } from "../plan/sandbox-plan.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
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
