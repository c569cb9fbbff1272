// Removing sandboxes whose owner is gone (proxywall was SIGKILLed, or the machine lost power
// mid-run): the namespace a state or lock file names is torn down (with the processes still in
// it), then the files go.
import { sandboxNames } from "../plan/addresses.ts";
import { planTeardown } from "../plan/sandbox-plan.ts";
import { removeSandbox } from "./apply.ts";
import { forgetSandbox, listSandboxes } from "./state.ts";

export interface GcReport {
  removed: { id: string; killed: number }[];
  /** What could not be removed, one line each. */
  problems: string[];
}

export async function collectGarbage(stateDir: string): Promise<GcReport> {
  const report: GcReport = { removed: [], problems: [] };
  for (const s of listSandboxes(stateDir)) {
    if (s.alive) continue;
    // The name follows from the id, so a sandbox whose owner died before writing its state (or
    // whose state file is unreadable) is still found.
    const names = sandboxNames(s.id);
    const { killed, left } = await removeSandbox(names.netns, planTeardown(names));
    if (left.length > 0) {
      report.problems.push(`sandbox ${s.id}: could not remove ${left.join(", ")}`);
      continue;
    }
    forgetSandbox(stateDir, s.id);
    report.removed.push({ id: s.id, killed });
  }
  return report;
}
