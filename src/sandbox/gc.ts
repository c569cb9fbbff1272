// Removing sandboxes whose owner is gone (proxywall was SIGKILLed, or the machine lost power
// mid-run): what a state file or a subnet claim names is torn down, then the files go.
import { sandboxNames } from "../plan/addresses.ts";
import { planTeardown } from "../plan/sandbox-plan.ts";
import { removeSandbox } from "./apply.ts";
import { listClaims, listStates, ownerAlive, removeFile } from "./state.ts";

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
