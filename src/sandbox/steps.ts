// The steps of one `proxywall run`, in the order session.ts calls them. Each does one thing and
// registers its own undo before it acts.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import { Watch } from "../monitor/watch.ts";
import { DOOR } from "../plan/addresses.ts";
import { ALL_FEATURES, HOLD_QUEUE, type Features } from "../plan/ruleset.ts";
import { planSandbox, watchRules, type SandboxConfig, type SandboxPlan } from "../plan/sandbox-plan.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { ipBatch, removeSandbox, SetupError } from "./apply.ts";
import type { FenceChoice } from "../fence/select.ts";
import { installFence } from "../fence/install.ts";
import { collectGarbage } from "./gc.ts";
import type { Setup } from "./setup.ts";
import type { ClientEnds } from "../proxy/connection.ts";
import { holdSandbox, releaseSandbox, selfOwner, writeState, type Hold, type SandboxState } from "./state.ts";
import { toolError } from "../sys/tools.ts";

/** Removes sandboxes whose owner died (SIGKILL, power loss) before this one is made. */
export async function collectStale(s: Setup): Promise<void> {
  const gc = await collectGarbage(s.cfg.stateDir);
  if (gc.removed.length > 0) diag.info(`removed ${gc.removed.length} stale sandbox(es) of dead owners: ${gc.removed.map((r) => r.id).join(" ")}`);
  for (const p of gc.problems) diag.warn(p);
}

/**
 * Takes the sandbox id (a lock file held for life, so gc never takes a live sandbox) and writes
 * the state file `ls` and `gc` read. Returns a function that rewrites the state as it changes.
 */
export function claimId(s: Setup, names: SandboxPlan["names"]): (change: Partial<SandboxState>) => void {
  let hold: Hold;
  try {
    hold = holdSandbox(s.cfg.stateDir, s.id);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === "EACCES" || err.code === "EROFS" ? `${err.code}: a writable directory is needed (pass --state-dir DIR)` : err.message;
    throw new SetupError(`cannot write the state directory ${s.cfg.stateDir}: ${why}`);
  }
  // Last out: while anything is left behind, the files stay (unlocked) for gc to retry.
  s.onTeardown("state", () => {
    if (s.leftBehind.length === 0) releaseSandbox(hold);
  });
  let state: SandboxState = {
    v: 2,
    id: s.id,
    owner: selfOwner(),
    created: nowTs(),
    netns: names.netns,
    cmd: s.cfg.cmd,
    ready: null,
  };
  writeState(s.cfg.stateDir, state);
  return (change) => writeState(s.cfg.stateDir, (state = { ...state, ...change }));
}

/** `ip netns add`; then IPv6 is switched on inside, where the namespace inherited it off. */
export async function makeNamespace(s: Setup, plan: Pick<SandboxPlan, "names" | "hostBatch" | "teardownBatch">): Promise<{ ipv6: boolean }> {
  s.onTeardown("namespace", async () => {
    const { killed, left } = await removeSandbox(plan.names.netns, plan.teardownBatch);
    if (killed > 0) diag.info(`ended ${killed} process${killed === 1 ? "" : "es"} CMD left running in the sandbox`);
    return left;
  });
  const r = await ipBatch(plan.hostBatch);
  if (r.code !== 0) throw new SetupError(toolError("creating the network namespace (ip -batch)", r));
  return { ipv6: enableIpv6(s, plan.names.netns) };
}

const DISABLE_IPV6 = ["all", "default"].map((c) => `/proc/sys/net/ipv6/conf/${c}/disable_ipv6`);

/**
 * Whether the sandbox can have IPv6. A new namespace may inherit `disable_ipv6=1` (hardened hosts
 * with net.core.devconf_inherit_init_net=1); it is the sandbox's own setting, so it is turned on
 * there. Without IPv6 at all (ipv6.disable=1), IPv6 sockets cannot even be made: nothing to fence.
 */
function enableIpv6(s: Setup, netns: string): boolean {
  if (!existsSync("/proc/sys/net/ipv6")) return false;
  return inNetns(netnsPath(netns), () => {
    try {
      for (const f of DISABLE_IPV6) if (readFileSync(f, "utf8").trim() !== "0") writeFileSync(f, "0");
      return true;
    } catch (e) {
      s.degrade(
        "ipv6",
        `IPv6 is disabled in the new namespace and cannot be turned on there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        "allow writes to /proc/sys/net inside the container, or leave net.core.devconf_inherit_init_net at 0 on the host",
        "IPv6 connections from CMD fail at once (no IPv6 route), but are not reported",
      );
      return false;
    }
  });
}

/** Opens the best watch that works; which one decides the log rules the fence carries. */
export function openWatch(s: Setup, names: SandboxPlan["names"]): Watch {
  const watch = Watch.open(s.cfg.monitor, {
    sandbox: s.id,
    nsPath: netnsPath(names.netns),
    prefix: names.logPrefix,
    nflogGroup: s.cfg.nflogGroup,
    hold: HOLD_QUEUE,
    action: "reject",
    proxy: { addrs: [DOOR.v4, DOOR.v6], port: s.cfg.proxyPort },
    emit: s.emit,
    degrade: s.degrade,
  });
  s.onTeardown("monitor", () => watch.close());
  return watch;
}

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
};

/** The links, addresses and routes inside, then the fence; returns the plan that was applied. */
export async function fence(s: Setup, names: SandboxPlan["names"], watch: Watch, ipv6: boolean, choosing: Promise<FenceChoice>): Promise<{ plan: SandboxPlan; fenced: boolean }> {
  const logKind = watch.logKind;
  const config: SandboxConfig = {
    id: s.id,
    proxyPort: s.cfg.proxyPort,
    ipv6,
    backend: s.cfg.backend ?? "nft",
    ...watchRules(logKind, s.cfg.nflogGroup, names.logPrefix),
    logRate: s.cfg.logRate,
    features: ALL_FEATURES,
  };
  let plan = planSandbox(config);
  const inside = await ipBatch(plan.sandboxBatch, { netns: plan.names.netns });
  if (inside.code !== 0) throw new SetupError(toolError(`configuring ${plan.names.netns} (ip -batch)`, inside));
  try {
    const chosen = await choosing;
    const { features, missing } = chosen.byLog[logKind];
    plan = planSandbox({ ...config, backend: chosen.backend, features });
    for (const m of missing) s.degrade(m, FEATURE_LOSS[m].missing, FEATURE_LOSS[m].fix, FEATURE_LOSS[m].still);
    await installFence(chosen, plan.fence, plan.names.netns);
    watch.fenceInstalled(chosen.backend, features);
    return { plan, fenced: true };
  } catch (e) {
    if (!(e instanceof SetupError) || !s.cfg.allowDegraded) throw e;
    // No rules, so nothing to log or hold: the monitor has nothing to watch.
    watch.fenceInstalled(null, { queue: false, log: false });
    s.degrade(
      "fence",
      `the firewall rules could not be installed: ${e.message}`,
      "run as root (or with CAP_NET_ADMIN) where nftables or iptables works; see proxywall doctor",
      "only the namespace: its one link leads nowhere, so direct connections fail, but slowly and unreported",
    );
    return { plan, fenced: false };
  }
}

/** The proxy's door on the sandbox's loopback: the built-in proxy, or a relay to the user's own. */
export async function openDoor(s: Setup, plan: SandboxPlan): Promise<void> {
  const netns = netnsPath(plan.names.netns);
  const ext = s.cfg.externalProxy;
  try {
    if (ext) {
      const { startRelay } = await import("../proxy/relay.ts");
      const relay = await startRelay({ listen: plan.door, netns, to: ext });
      s.onTeardown("relay", () => relay.close());
    } else {
      const [{ startProxy }, { policyAdmission }, { Attributor }] = await Promise.all([
        import("../proxy/http-proxy.ts"),
        import("../proxy/admission.ts"),
        import("../monitor/attribution.ts"),
      ]);
      // Who opened each client connection: an exact lookup in the sandbox, made when first needed.
      let attributor: InstanceType<typeof Attributor> | null = null;
      s.onTeardown("proxy attribution", () => attributor?.close());
      const whoAsks = (c: ClientEnds) => {
        attributor ??= new Attributor(netns, () => s.cmdPid);
        const family = c.addr.includes(":") ? "ipv6" : "ipv4";
        return attributor.attribute({ proto: "tcp", family, srcAddr: c.addr, srcPort: c.port, dstAddr: c.local.addr, dstPort: c.local.port }, true);
      };
      const proxy = await startProxy({
        listen: plan.door,
        netns,
        sandbox: s.id,
        onEvent: s.emit,
        admit: policyAdmission(s.cfg.policy, whoAsks),
        idleTimeoutMs: s.cfg.idleTimeoutS * 1000,
        maxClients: s.cfg.maxClients,
      });
      s.onTeardown("proxy", () => proxy.close());
    }
  } catch (e) {
    throw new SetupError(`starting the ${ext ? "relay to your proxy" : "built-in proxy"}: ${(e as Error).message}`);
  }
}
