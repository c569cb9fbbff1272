// The fence step of a run: the plan made once (the fence's tool and features were decided while the
// namespace was built, the watch decided the log rules), then installed; or, with
// --allow-degraded, a loud run without it.
import { readFileSync } from "node:fs";
import type { FenceChoice, Probed } from "../fence/select.ts";
import { installFence } from "../fence/install.ts";
import type { Watch } from "../monitor/watch.ts";
import type { SandboxNames } from "../plan/addresses.ts";
import { ALL_FEATURES, type Features } from "../plan/ruleset.ts";
import { planSandbox, watchRules, type SandboxConfig, type SandboxPlan } from "../plan/sandbox-plan.ts";
import { SetupError } from "./apply.ts";
import type { Setup } from "./setup.ts";

const FEATURE_LOSS: Record<keyof Features, { missing: string; fix: string; still: string }> = {
  conntrack: {
    missing: "conntrack (nf_conntrack / ct state): replies to connections made into the sandbox are dropped",
    fix: "load nf_conntrack on the host (modprobe nf_conntrack) or run where it is built in",
    still: "all direct TCP/UDP connections from CMD are still rejected",
  },
  log: {
    missing: "packet logging (nft log / NFLOG or LOG target): bypass attempts cannot be reported",
    fix: "load nfnetlink_log (NFLOG) or xt_LOG/nft_log on the host",
    still: "all direct TCP/UDP connections from CMD are still rejected, silently",
  },
  limit: {
    missing: "rate limiting (nft limit / xt_limit): the log step is not rate-limited",
    fix: "load nft_limit or xt_limit on the host",
    still: "all direct TCP/UDP connections are still rejected and logged",
  },
  queue: {
    missing: "NFQUEUE (nft queue / xt_NFQUEUE): TCP attempts cannot be held while their process is looked up, so most are reported without a process",
    fix: "load nfnetlink_queue and nft_queue (or xt_NFQUEUE) on the host",
    still: "all direct TCP/UDP connections are still rejected and logged",
  },
  dns: {
    missing: "NAT redirect (nft redirect / xt REDIRECT): DNS queries cannot be answered by proxywall's responder, so a resolver that closes its socket at once is reported without a process",
    fix: "load nf_nat and nft_redirect (or iptable_nat and xt_REDIRECT) on the host",
    still: "all direct TCP/UDP connections, DNS included, are still rejected and logged",
  },
};

const IPTABLES_PACKAGE = "add the iptables package to the image (apt-get install iptables; apk add iptables)";

/** Whether the kernel has the xt NFQUEUE target (built in or loaded): iptables can hold SYNs even where nft has no `queue`. */
export function kernelHasXtQueue(targets = "/proc/net/ip_tables_targets"): boolean {
  try {
    return /^NFQUEUE$/m.test(readFileSync(targets, "utf8"));
  } catch {
    return false;
  }
}

/**
 * The fix for a missing feature, from what the fence choice's probes found: where the iptables
 * tools were never there to ask (an nft-only image), the missing piece may be that package, not a
 * host module. For the hold, a kernel that lists the xt NFQUEUE target settles it: iptables can
 * use it where nft cannot (nft's `queue` is a kernel option of its own).
 */
export function featureFix(feature: keyof Features, probed: readonly Pick<Probed, "backend" | "tools">[], xtQueue: boolean): string {
  const host = FEATURE_LOSS[feature].fix;
  const xt = probed.filter((p) => p.backend === "iptables");
  if (xt.length === 0 || xt.some((p) => p.tools !== null)) return host;
  if (feature === "queue" && xtQueue) return `${IPTABLES_PACKAGE}: this kernel has the xt NFQUEUE target, which proxywall uses through iptables where nft has no queue`;
  return `${IPTABLES_PACKAGE}, which proxywall asks too and uses where it holds more; or ${host}`;
}

/**
 * The plan, made once: the fence's tool and features were decided meanwhile (check-only runs
 * started with the run), the watch decided the log rules. Then the fence is installed.
 */
export async function fence(s: Setup, names: SandboxNames, watch: Watch, ipv6: boolean, choosing: Promise<FenceChoice>): Promise<{ plan: SandboxPlan; fenced: boolean }> {
  const config = (backend: SandboxConfig["backend"], features: Features): SandboxConfig => ({
    id: s.id,
    proxyPort: s.cfg.proxyPort,
    ipv6,
    backend,
    ...watchRules(watch.logKind, s.cfg.nflogGroup, names.logPrefix),
    logRate: s.cfg.logRate,
    features,
  });
  let chosen: FenceChoice;
  try {
    chosen = await choosing;
  } catch (e) {
    if (!(e instanceof SetupError) || !s.cfg.allowDegraded) throw e;
    return { plan: planSandbox(config(s.cfg.backend ?? "nft", ALL_FEATURES)), fenced: unfenced(s, watch, e) };
  }
  const { features, missing } = chosen.byLog[watch.logKind];
  const plan = planSandbox(config(chosen.backend, features));
  const xtQueue = missing.includes("queue") && kernelHasXtQueue();
  for (const m of missing) s.degrade(m, FEATURE_LOSS[m].missing, featureFix(m, chosen.probed, xtQueue), FEATURE_LOSS[m].still);
  try {
    await installFence(chosen, plan.fence, names.netns);
  } catch (e) {
    if (!(e instanceof SetupError) || !s.cfg.allowDegraded) throw e;
    return { plan, fenced: unfenced(s, watch, e) };
  }
  watch.fenceInstalled(chosen.backend, features);
  return { plan, fenced: true };
}

/** --allow-degraded and no fence: CMD runs, loudly. Always false (fenced). */
function unfenced(s: Setup, watch: Watch, e: Error): false {
  // No rules, so nothing to log or hold: the monitor has nothing to watch.
  watch.fenceInstalled(null, { queue: false, log: false });
  s.degrade(
    "fence",
    `the firewall rules could not be installed: ${e.message}`,
    "run as root (or with CAP_NET_ADMIN) where nftables or iptables works; see proxywall doctor",
    "only the namespace: its one link leads nowhere, so direct connections fail, but slowly and unreported",
  );
  return false;
}

