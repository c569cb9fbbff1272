// Removing sandboxes whose owner is gone (proxywall was SIGKILLed, or the machine lost power
// mid-run): what a state file or a subnet claim names is torn down, then the files go.
import { sandboxNames } from "../plan/addresses.ts";
import { planTeardown } from "../plan/sandbox-plan.ts";
import { removeNetwork } from "./apply.ts";
import { listClaims, listStates, ownerAlive, removeFile } from "./state.ts";
import { netnsPath } from "../sys/netns.ts";
import { pidsInNetns } from "../sys/procfs.ts";

/**
 * CMD outlives a SIGKILLed proxywall, still fenced but in a namespace nobody watches or owns.
 * Removing the sandbox ends it: the namespace would otherwise live on, invisible, with it.
 */
async function removeSandbox(netns: string, hostIf: string, teardown: string[]): Promise<{ killed: number; left: string[] }> {
  const pids = pidsInNetns(netnsPath(netns));
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  return { killed: pids.length, left: await removeNetwork(teardown, netns, hostIf) };
}

export interface GcReport {
  removed: { id: string; killed: number }[];
  /** What could not be removed, one line each. */
  problems: string[];
}

export async function collectGarbage(stateDir: string): Promise<GcReport> {
  const report: GcReport = { removed: [], problems: [] };
  const live = new Set<string>();
  for (const s of listStates(stateDir)) {
    if (!s.state) {
      report.problems.push(`${s.path}: not a proxywall state file (${s.problem}); left alone`);
      continue;
    }
    if (ownerAlive(s.state)) {
      live.add(s.state.id);
      continue;
    }
    const { killed, left } = await removeSandbox(s.state.netns, s.state.host_if, planTeardown(sandboxNames(s.state.id)));
    if (left.length > 0) {
      report.problems.push(`sandbox ${s.state.id}: could not remove ${left.join(", ")}`);
      continue;
    }
    removeFile(s.state.claim);
    removeFile(s.path);
    report.removed.push({ id: s.state.id, killed });
  }
  // A claim without a live state: its owner died between claiming the subnet and writing state.
  for (const c of listClaims(stateDir)) {
    if (c.alive || (c.id && live.has(c.id))) continue;
    if (c.id) {
      const names = sandboxNames(c.id);
      const { killed, left } = await removeSandbox(names.netns, names.hostIf, planTeardown(names));
      if (left.length > 0) {
        report.problems.push(`sandbox ${c.id}: could not remove ${left.join(", ")}`);
        continue;
      }
      if (!report.removed.some((r) => r.id === c.id)) report.removed.push({ id: c.id, killed });
    }
    removeFile(c.path);
  }
  return report;
}
