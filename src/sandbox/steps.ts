// The steps of one `proxywall run`, in the order session.ts calls them. Each does one thing and
// registers its own undo before it acts.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import { Watch } from "../monitor/watch.ts";
import { DOOR, type SandboxNames } from "../plan/addresses.ts";
import { HOLD_QUEUE } from "../plan/ruleset.ts";
import { planInside, planNamespace, planTeardown } from "../plan/sandbox-plan.ts";
import { createNetns, inNetns, netnsPath } from "../sys/netns.ts";
import { ipBatch, removeSandbox, SetupError } from "./apply.ts";
import { collectGarbage } from "./gc.ts";
import type { Setup } from "./setup.ts";
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
export function claimId(s: Setup, names: SandboxNames): (change: Partial<SandboxState>) => void {
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

/**
 * `ip netns add` (the one step in proxywall's own namespace); IPv6 switched on inside where the
 * namespace inherited it off; then loopback, the veth pair, addresses and routes inside.
 */
export async function makeNamespace(s: Setup, names: SandboxNames): Promise<{ ipv6: boolean }> {
  const teardown = planTeardown(names);
  s.onTeardown("namespace", async () => {
    const { killed, left } = await removeSandbox(names.netns, teardown);
    if (killed > 0) diag.info(`ended ${killed} process${killed === 1 ? "" : "es"} CMD left running in the sandbox`);
    return left;
  });
  await applyNamespace(planNamespace(names));
  const ipv6 = enableIpv6(s, names.netns);
  const inside = await ipBatch(planInside(names, ipv6), { netns: names.netns });
  if (inside.code !== 0) throw new SetupError(toolError(`configuring ${names.netns} (ip -batch)`, inside));
  return { ipv6 };
}

/** The `netns add NAME` lines, in-process as ip does them; ip itself (and its own words) where that fails. */
async function applyNamespace(lines: readonly string[]): Promise<void> {
  for (const line of lines) {
    const name = /^netns add (\S+)$/.exec(line)?.[1];
    try {
      if (!name) throw new Error(`not a netns add: ${line}`);
      createNetns(name);
      continue;
    } catch (e) {
      diag.debug(`netns add in-process: ${(e as Error).message}; asking ip`);
    }
    const r = await ipBatch([line]);
    if (r.code !== 0) throw new SetupError(toolError("creating the network namespace (ip -batch)", r));
  }
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
export function openWatch(s: Setup, names: SandboxNames): Watch {
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

