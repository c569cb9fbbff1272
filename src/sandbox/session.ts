// One `proxywall run`: build the sandbox, start the proxy, run CMD, and take everything down again
// on every way out. Setup steps push their undo before they act, so a failure or a signal at any
// point removes exactly what exists, in reverse order.
import { constants } from "node:os";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { LineWriter } from "../events/line-writer.ts";
import type { Degraded, EventLine, SandboxReady } from "../events/schema.ts";
import { newSandboxId, sandboxNames, type Pool } from "../plan/addresses.ts";
import { ALL_FEATURES, HOLD_QUEUE, type Features } from "../plan/ruleset.ts";
import { Watch, type MonitorChoice } from "../monitor/watch.ts";
import { planSandbox, proxyEnv, watchRules, type Backend, type SandboxConfig } from "../plan/sandbox-plan.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { startReaper } from "../sys/reaper.ts";
import { ownChildren } from "../sys/tools.ts";
import { EXIT } from "../cli/exit-codes.ts";
import { applyFence, applyNetwork, backendCandidates, nftCanQueue, orderCandidates, removeSandbox, SetupError } from "./apply.ts";
import { collectGarbage } from "./gc.ts";
import { claimSlot, ensureStateDir, releaseClaim, removeState, removeStateDirIfEmpty, selfOwner, writeState } from "./state.ts";
import { jitTiers } from "../sys/jit-tiers.ts";

export interface RunConfig {
  cmd: string[];
  proxyPort: number;
  /** The user's own proxy listens on host-ip:proxyPort; proxywall starts none. */
  externalProxy: boolean;
  backend: Backend | undefined;
  nflogGroup: number;
  logRate: number;
  pool: Pool;
  user: { uid: number; gid: number } | null;
  stateDir: string;
  allowDegraded: boolean;
  events: LineWriter;
  monitor: MonitorChoice;
  /** Seconds between bypass_summary lines; 0 for only the final one. */
  summaryInterval: number;
  failOnBypass: boolean;
}

export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

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

class Aborted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal} during setup`);
  }
}

function signalExit(signal: string): number {
  return 128 + ((constants.signals as Record<string, number>)[signal] ?? 0);
}

export async function runSandbox(cfg: RunConfig): Promise<number> {
  const t0 = performance.now();
  let tStep = t0;
  const stepDone = (what: string) => {
    const now = performance.now();
    diag.debug(`${what} ${(now - tStep).toFixed(1)} ms`);
    tStep = now;
  };
  const step = (what: string) => stepDone(`setup: ${what}`);
  const id = newSandboxId();
  const emit = (e: EventLine) => cfg.events.write(e);
  const degraded: Degraded[] = [];
  const degrade = (component: string, missing: string, fix: string, still: string) => {
    const d: Degraded = { v: 1, event: "degraded", ts: nowTs(), sandbox: id, component, missing, fix, still_protected: still };
    degraded.push(d);
    emit(d);
  };
  // `record` steps forget the sandbox; they are skipped while anything real is left, so gc can retry.
  const undo: { what: string; record?: true; fn: () => Promise<unknown> | unknown }[] = [];
  let child: Bun.Subprocess | null = null;
  let abortedBy: string | null = null;
  const checkAbort = () => {
    if (abortedBy) throw new Aborted(abortedBy);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
    else abortedBy ??= sig;
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, onSignal);
  const stopReaper = process.pid === 1 ? startReaper((pid) => pid === child?.pid || ownChildren.has(pid)) : () => {};

  let code: number = EXIT.failure;
  let watch: Watch | null = null;
  let bypassed = false;
  let cmdExit: number | null = null;
  let cmdSignal: string | null = null;
  try {
    ensureStateDir(cfg.stateDir);
    const gc = await collectGarbage(cfg.stateDir);
    if (gc.removed.length > 0) diag.info(`removed ${gc.removed.length} stale sandbox(es) of dead owners: ${gc.removed.map((r) => r.id).join(" ")}`);
    for (const p of gc.problems) diag.warn(p);
    step("gc");
    checkAbort();

    const candidates = backendCandidates(cfg.backend);
    if (candidates.length === 0) {
      const want = cfg.backend === "iptables" ? "iptables-restore and ip6tables-restore" : cfg.backend === "nft" ? "nft" : "nft, or iptables-restore and ip6tables-restore";
      throw new SetupError(`no firewall tool: ${want} not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin (install nftables or iptables)`);
    }
    const claim = claimSlot(cfg.stateDir, cfg.pool, id);
    if (!claim) throw new SetupError(`address pool ${cfg.pool.text} is exhausted (every /30 is in use by a sandbox or a host route): pass a larger --pool`);
    undo.push({ what: "subnet claim", record: true, fn: () => releaseClaim(claim) });

    let config: SandboxConfig = {
      id,
      addrs: claim.addrs,
      proxyPort: cfg.proxyPort,
      backend: candidates[0]!.backend,
      ...watchRules("none", cfg.nflogGroup, sandboxNames(id).logPrefix),
      logRate: cfg.logRate,
      features: ALL_FEATURES,
    };
    let plan = planSandbox(config);
    const n = plan.names;
    writeState(cfg.stateDir, {
      v: 1,
      id,
      owner: selfOwner(),
      created: nowTs(),
      netns: n.netns,
      host_if: n.hostIf,
      sandbox_if: n.sandboxIf,
      claim: claim.path,
      host_ipv4: claim.addrs.hostV4,
      sandbox_ipv4: claim.addrs.sandboxV4,
      host_ipv6: claim.addrs.hostV6,
      sandbox_ipv6: claim.addrs.sandboxV6,
      backend: candidates[0]!.backend,
      proxy_port: cfg.proxyPort,
      cmd: cfg.cmd,
    });
    undo.push({ what: "state file", record: true, fn: () => removeState(cfg.stateDir, id) });
    undo.push({
      what: "namespace",
      fn: async () => {
        const { killed, left } = await removeSandbox(n.netns, n.hostIf, plan.teardownBatch);
        if (killed > 0) diag.info(`ended ${killed} process${killed === 1 ? "" : "es"} CMD left running in the sandbox`);
        return left;
      },
    });
    // Whether nft can hold packets is asked while the namespace is being built, so that a kernel
    // without nft queue goes straight to iptables instead of paying for a refused ruleset first.
    const nft = candidates.find((c) => c.backend === "nft");
    const nftQueues = nft && candidates.length > 1 && cfg.monitor !== "off" ? nftCanQueue(nft.tools.nft!) : null;
    await applyNetwork(plan);
    step("namespace and veth");
    checkAbort();

    // The monitor opens first: which source works decides the log rules the fence carries.
    const nsPath = netnsPath(n.netns);
    const proxyAddrs = { addrs: [claim.addrs.hostV4, claim.addrs.hostV6], port: cfg.proxyPort };
    watch = Watch.open(cfg.monitor, {
      sandbox: id,
      nsPath,
      prefix: n.logPrefix,
      nflogGroup: cfg.nflogGroup,
      hold: HOLD_QUEUE,
      action: "reject",
      proxy: proxyAddrs,
      emit,
      degrade,
    });
    undo.push({ what: "monitor", fn: () => watch?.close() });
    config = { ...config, ...watchRules(watch.logKind, cfg.nflogGroup, n.logPrefix) };
    step(`monitor ${watch.source}`);

    let fenced = true;
    try {
      const order = orderCandidates(candidates, config.hold ? await nftQueues : null);
      const fence = await applyFence(config, order, `${cfg.stateDir}/${id}.rules`);
      plan = fence.plan;
      for (const m of fence.missing) degrade(m, FEATURE_LOSS[m].missing, FEATURE_LOSS[m].fix, FEATURE_LOSS[m].still);
      watch.fenceInstalled(fence.backend, plan.config.features);
      step(`fence (${fence.backend})`);
    } catch (e) {
      if (!(e instanceof SetupError) || !cfg.allowDegraded) throw e;
      fenced = false;
      // No rules, so nothing to log or hold: the monitor has nothing to watch.
      watch.fenceInstalled(null, { queue: false, log: false });
      degrade(
        "fence",
        `the firewall rules could not be installed: ${e.message}`,
        "run as root (or with CAP_NET_ADMIN) where nftables or iptables works; see proxywall doctor",
        "only the namespace: CMD reaches nothing but the host side of the veth, and direct connections to the host are NOT rejected",
      );
    }
    checkAbort();

    let detection: SandboxReady["detection"] = "off";
    if (fenced && watch.source !== "off") {
      const test = await watch.selfTest();
      step("self-test");
      detection = test.ok ? "verified" : "unverified";
      if (!test.ok) {
        degrade("detection", `the self-test failed: ${test.why}`, "see proxywall doctor", "every direct TCP/UDP connection is still rejected; bypass reports may be missing");
      }
    }
    checkAbort();

    if (!cfg.externalProxy) {
      const { startProxy } = await import("../proxy/http-proxy.ts");
      const proxy = await startProxy({
        listen: [
          { host: claim.addrs.hostV4, port: cfg.proxyPort },
          { host: claim.addrs.hostV6, port: cfg.proxyPort },
        ],
        sandbox: id,
        onEvent: emit,
      }).catch((e: Error) => {
        throw new SetupError(`starting the built-in proxy: ${e.message}`);
      });
      undo.push({ what: "proxy", fn: () => proxy.close() });
      step("proxy");
    }
    checkAbort();

    if (cfg.user === null && (process.getuid?.() ?? 0) === 0) {
      degrade(
        "privileges",
        "CMD runs as root and keeps CAP_NET_ADMIN inside its namespace, so it could delete the rules",
        "pass --user UID[:GID] to run CMD without privileges",
        "the rules hold as long as CMD does not remove them",
      );
    }

    const ready: SandboxReady = {
      v: 1,
      event: "sandbox_ready",
      ts: nowTs(),
      sandbox: id,
      netns: n.netns,
      host_if: n.hostIf,
      sandbox_if: n.sandboxIf,
      host_ipv4: claim.addrs.hostV4,
      sandbox_ipv4: claim.addrs.sandboxV4,
      host_ipv6: claim.addrs.hostV6,
      sandbox_ipv6: claim.addrs.sandboxV6,
      proxy: { url: plan.proxyUrl, port: cfg.proxyPort, builtin: !cfg.externalProxy },
      backend: fenced ? plan.config.backend : null,
      log: fenced && plan.config.features.log ? plan.config.log.kind : "none",
      monitor: watch.source,
      detection,
      degraded: degraded.map((d) => d.component),
      setup_ms: Math.round((performance.now() - t0) * 10) / 10,
    };
    emit(ready);
    const summarize = async (final: boolean) => {
      if (!watch || watch.source === "off") return;
      if (final) await watch.drain();
      if (process.env.PROXYWALL_DEBUG) {
        const m = process.memoryUsage();
        diag.debug(
          `memory: rss ${(m.rss / 1e6).toFixed(1)} MB, JS heap ${(m.heapUsed / 1e6).toFixed(1)} of ${(m.heapTotal / 1e6).toFixed(1)} MB, external ${(m.external / 1e6).toFixed(1)} MB, watch thread heap ${(watch.threadHeapBytes / 1e6).toFixed(1)} MB; JIT: ${jitTiers}`,
        );
      }
      for (const line of watch.summary.lines(id, final)) emit(line);
      const t = await watch.totals();
      emit({ v: 1, event: "bypass_totals", ts: nowTs(), sandbox: id, tcp: t?.tcp ?? null, udp: t?.udp ?? null, other: t?.other ?? null, events: watch.summary.events, lost: watch.lost, final });
      return t;
    };
    const timer = cfg.summaryInterval > 0 ? setInterval(() => void summarize(false), cfg.summaryInterval * 1000) : null;
    // Runs before the monitor closes and the namespace goes: the counters live there.
    undo.push({
      what: "bypass summary",
      fn: async () => {
        if (timer) clearInterval(timer);
        const t = await summarize(true);
        bypassed = (watch?.summary.events ?? 0) > 0 || (t ? t.tcp + t.udp + t.other > 0 : false);
      },
    });

    const env = proxyEnv(process.env, plan.proxyUrl);
    try {
      child = inNetns(netnsPath(n.netns), () =>
        Bun.spawn(cfg.cmd, {
          env,
          stdio: ["inherit", "inherit", "inherit"],
          ...(cfg.user ? { uid: cfg.user.uid, gid: cfg.user.gid } : {}),
        }),
      );
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const notFound = err.code === "ENOENT" || /no such file|not found/i.test(err.message);
      diag.error(`cannot run ${cfg.cmd[0]}: ${notFound ? "command not found" : err.code === "EACCES" ? "permission denied" : err.message}`);
      code = notFound ? 127 : 126;
    }
    if (child) {
      watch?.cmdStarted(child.pid);
      await child.exited;
      stepDone("CMD");
      cmdExit = child.exitCode;
      const sc = child.signalCode;
      cmdSignal = typeof sc === "number" ? (Object.entries(constants.signals).find(([, n]) => n === sc)?.[0] ?? String(sc)) : sc;
      code = cmdSignal ? signalExit(cmdSignal) : (cmdExit ?? EXIT.failure);
    }
  } catch (e) {
    if (e instanceof Aborted) {
      code = signalExit(e.signal);
      diag.warn(`${e.message}; removing the sandbox`);
    } else if (e instanceof SetupError) {
      code = EXIT.sandbox;
      diag.error(`cannot build the sandbox: ${e.message}`);
    } else {
      code = EXIT.failure;
      diag.error(e as Error);
    }
  } finally {
    const left: string[] = [];
    for (const step of undo.reverse()) {
      if (step.record && left.length > 0) continue;
      try {
        const r = await step.fn();
        if (Array.isArray(r)) left.push(...r);
      } catch (e) {
        left.push(`${step.what}: ${(e as Error).message}`);
      }
      stepDone(`teardown: ${step.what}`);
    }
    for (const l of left) diag.error(`left behind: ${l} (proxywall gc retries)`);
    if (left.length === 0) removeStateDirIfEmpty(cfg.stateDir);
    if (cfg.failOnBypass && bypassed && code === 0) {
      code = EXIT.bypass;
      diag.error("bypass attempts were rejected during the run (--fail-on-bypass)");
    }
    stopReaper();
    for (const s of FORWARDED_SIGNALS) process.off(s, onSignal);
    emit({
      v: 1,
      event: "sandbox_closed",
      ts: nowTs(),
      sandbox: id,
      exit_code: code,
      cmd_exit_code: cmdExit,
      cmd_signal: cmdSignal,
      duration_ms: Math.round(performance.now() - t0),
      cleanup: left,
    });
  }
  // Here, not inside try: teardown (--fail-on-bypass) may still change the code.
  return code;
}
