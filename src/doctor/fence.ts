// The fence checks: the tool and features `run` would choose, asked through run's own selection
// code (src/fence/select.ts, check-only), then the fence run would plan, installed for real in the
// scratch namespace with run's own installer. So run and doctor cannot disagree.
import { installFence } from "../fence/install.ts";
import { pickFence, probeFence, noFenceReason, type FenceChoice, type FenceWants, type Probed } from "../fence/select.ts";
import type { ProbeKey } from "../fence/probes.ts";
import { planRuleset } from "../plan/ruleset.ts";
import { fenceSteps, watchRules, type Backend } from "../plan/sandbox-plan.ts";
import { netnsPath } from "../sys/netns.ts";
import { featureFix, kernelHasXtQueue } from "../sandbox/fence-step.ts";
import { bad, notChecked, ok, type Check } from "./report.ts";
import { probeNflogBind } from "./system.ts";

const NFLOG_GROUP = 1;
const FEATURE_CHECKS = ["conntrack", "nflog", "log", "nfqueue"] as const;

/** Every fence check as not run, saying what it needs. */
export function fenceNotChecked(needs: string): Check[] {
  return [notChecked("fence", true, needs), ...FEATURE_CHECKS.map((n) => notChecked(n, false, needs))];
}

/**
 * The real missing piece when no tool works: the packages when none is installed; the kernel when
 * an installed tool was refused the rejects by it; else the tool's own failure, which its message
 * (in the detail) names: no fix is made up for it.
 */
export function noFenceFix(probed: readonly Pick<Probed, "tools" | "unusable">[]): string | null {
  if (probed.every((p) => p.tools === null)) return "install the nftables package in the image (apt-get install nftables; apk add nftables), or the iptables package";
  const ran = probed.filter((p) => p.tools !== null);
  if (ran.some((p) => /cannot install the rejects here/.test(p.unusable ?? ""))) {
    return "the kernel refuses even the rejects: on the host, load nf_tables and nft_reject_inet (or ip_tables, ip6_tables and the REJECT targets)";
  }
  return null;
}

function others(choice: FenceChoice): string {
  return choice.probed
    .filter((p) => p.flavour !== choice.flavour)
    .map((p) => `${p.label}: ${p.unusable ?? (p.unsupported.size > 0 ? `lacks ${[...p.unsupported.keys()].join(", ")}` : "would hold everything")}`)
    .join("; ");
}

/** One optional feature's check, from what the chosen tool answered. */
function featureCheck(name: (typeof FEATURE_CHECKS)[number], key: ProbeKey, best: Probed, okDetail: string, fix: string): Check {
  const refused = best.unsupported.get(key);
  return refused ? bad(name, "missing", false, `${best.label} cannot install it here: ${refused}`, fix) : ok(name, false, `${okDetail} (${best.label})`);
}

/** The fence and its optional features, in the scratch namespace `netns`. */
export async function fenceChecks(backend: Backend | undefined, netns: string): Promise<{ checks: Check[]; nflogWorks: boolean }> {
  const wants: FenceWants = { backend, logs: ["nflog", "kmsg"], hold: true };
  const probed = await probeFence(wants, true);
  const choice = pickFence(wants, probed);
  if (!choice) {
    return { checks: [bad("fence", "missing", true, noFenceReason(probed), noFenceFix(probed)), ...FEATURE_CHECKS.map((n) => notChecked(n, false, "a firewall tool that installs the fence"))], nflogWorks: false };
  }
  const ruleset = planRuleset({ ...watchRules("nflog", NFLOG_GROUP, "proxywall:00000000:"), logRate: 100, features: choice.features });
  let fence: Check;
  try {
    await installFence(choice, fenceSteps(ruleset, choice.backend), netns);
    const without = choice.missing.length > 0 ? `, without ${choice.missing.join(", ")} (run leaves it out and says so in a degraded line)` : " with every feature";
    fence = ok("fence", true, `in ${netns}, run installs the fence with ${choice.label}${without}; ${others(choice)}`);
  } catch (e) {
    fence = bad("fence", "missing", true, `${choice.label} was chosen, but installing the fence in ${netns} failed: ${(e as Error).message}`, noFenceFix(probed));
  }
  const best = choice.probed.find((p) => p.flavour === choice.flavour)!;
  const nflogRule = featureCheck("nflog", "nflog", best, `an NFLOG rule (group ${NFLOG_GROUP}) loads`, "on the host, load nfnetlink_log (and nft_log, or xt_NFLOG for iptables)");
  const bind = nflogRule.status === "ok" ? await probeNflogBind(netnsPath(netns), NFLOG_GROUP) : null;
  const nflog = bind ? bad("nflog", "missing", false, `the NFLOG rule loads, but binding an NFLOG netlink socket failed: ${bind}`, "on the host, load nfnetlink_log") : nflogRule;
  const checks = [
    fence,
    featureCheck("conntrack", "conntrack", best, "a ct state established,related rule loads", "on the host, load nf_conntrack (replies to connections into the sandbox are dropped without it)"),
    nflog,
    featureCheck("log", "kmsg", best, "a printk LOG rule loads; only --monitor kmsg uses it", "on the host, load nf_log_syslog (and nft_log, or xt_LOG for iptables)"),
    featureCheck("nfqueue", "queue", best, "an NFQUEUE rule loads: attribution can hold TCP SYNs", featureFix("queue", choice.probed, kernelHasXtQueue())),
  ];
  return { checks, nflogWorks: nflog.status === "ok" };
}
