// Applying a sandbox plan to the system, and undoing it. The thin side-effect layer: every
// decision was made in the plan; this runs ip and reports what failed. The fence: src/fence/.
import { existsSync } from "node:fs";
import { deleteNetns, inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, type ToolResult } from "../sys/tools.ts";
import { pidsInNetns, statFields } from "../sys/procfs.ts";
import { statusNsPid } from "../monitor/process-info.ts";

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

/** How long teardown keeps scanning the namespace for processes to end. */
const SCAN_BUDGET_MS = 2000;

/**
 * Ends every process still inside the sandbox namespace, then removes the namespace (its links and
 * rules go with it). What CMD left running (a daemon, a background job; or CMD itself after
 * proxywall was SIGKILLed) would otherwise live on, without a network, in a namespace nobody owns.
 * CMD's init (PID 1 of CMD's PID namespace) takes every process of that namespace with it, and is
 * not counted; the scan repeats until it finds nothing (for where no PID namespace could be
 * made, and for forks racing the kill), for at most SCAN_BUDGET_MS.
 */
export async function removeSandbox(netns: string, teardown: readonly string[]): Promise<{ killed: number; left: string[] }> {
  const ended = new Set<number>();
  const inits = new Set<number>();
  const deadline = performance.now() + SCAN_BUDGET_MS;
  while (existsSync(netnsPath(netns))) {
    const pids = pidsInNetns(netnsPath(netns)).filter((pid) => statFields(pid)?.[0] !== "Z");
    if (pids.length === 0) break;
    for (const pid of pids) {
      if (!ended.has(pid) && statusNsPid(pid) === 1 && pid !== 1) inits.add(pid);
      // Counted when found: ending an init ends its PID namespace, so the kernel may end the
      // others before this loop reaches them (then kill() says ESRCH).
      ended.add(pid);
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    if (performance.now() > deadline) break;
    await Bun.sleep(5);
  }
  // The teardown lines are `netns del NAME`: done in-process as ip does it; ip itself where that fails.
  for (const line of teardown) {
    const name = /^netns del (\S+)$/.exec(line)?.[1];
    try {
      if (!name) throw new Error(`not a netns del: ${line}`);
      deleteNetns(name);
    } catch {
      await ipBatch([line], { force: true }).catch(() => null);
    }
  }
  const killed = [...ended].filter((pid) => !inits.has(pid)).length;
  return { killed, left: existsSync(netnsPath(netns)) ? [`namespace ${netns}`] : [] };
}
