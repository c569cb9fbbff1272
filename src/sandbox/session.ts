// One `proxywall run`, as the README draws it: claim an id, build the namespace, open the watch,
// install the fence, verify, open the door, run CMD, tear down. Each step lives in steps.ts and
// registers its own undo, so every way out (CMD's end, a failure, a signal) removes exactly what
// exists, in reverse order.
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { SandboxReady } from "../events/schema.ts";
import type { Watch } from "../monitor/watch.ts";
import { newSandboxId, sandboxNames, INSIDE } from "../plan/addresses.ts";
import { doorUrl, type SandboxPlan } from "../plan/sandbox-plan.ts";
import { startReaper } from "../sys/reaper.ts";
import { ownChildren } from "../sys/tools.ts";
import { netnsPath } from "../sys/netns.ts";
import { EXIT } from "../exit-codes.ts";
import { SetupError } from "./apply.ts";
import { CmdRun, FORWARDED_SIGNALS, type CmdResult } from "./cmd.ts";
import { capNames, capsCmdWouldKeep, capSets, KEPT_CAPS } from "../sys/caps.ts";
import { readFileSync } from "node:fs";
import { Aborted, Setup, signalExit, type RunConfig } from "./setup.ts";
import { claimId, collectStale, makeNamespace, openWatch } from "./steps.ts";
import { fence } from "./fence-step.ts";
import { loadDoor, openDoor } from "./door.ts";
import { startSummaries, type Supervision } from "./summaries.ts";
import { reportLost, type LineWriter } from "../events/line-writer.ts";
import { chooseFence, runWants } from "../fence/select.ts";


export async function runSandbox(cfg: RunConfig): Promise<number> {
  const s = new Setup(newSandboxId(), cfg);
  const names = sandboxNames(s.id);
  let child: CmdRun | null = null;
  // Before sandbox_ready a signal stops setup; after it, it is CMD's (held until CMD runs).
  const onSignal = (sig: NodeJS.Signals) => {
    if (child?.released && child.running()) child.kill(sig);
    else s.abortedBy ??= sig;
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onSignal);
  const stopReaper = process.pid === 1 ? startReaper((pid) => pid === child?.pid || ownChildren.has(pid)) : () => {};

  let result: CmdResult = { code: EXIT.failure, exit: null, signal: null };
  let supervision: Supervision | null = null;
  try {
    // Which firewall tool and features (check-only runs), asked while the sandbox is being built.
    const choosing = chooseFence(runWants(cfg.backend, cfg.monitor));
    choosing.catch(() => {});
    const door = loadDoor();
    door.catch(() => {});
    const updateState = await s.step("state", () => claimId(s, names));
    // Stale sandboxes of dead owners go while this one is built: gc touches only theirs.
    const [{ ipv6 }] = await s.step("namespace", () => Promise.all([makeNamespace(s, names), collectStale(s)]));
    // CMD's init starts now (its own start-up overlaps the rest of setup); it runs CMD on go().
    const run = (child = new CmdRun({ cmd: cfg.cmd, nsPath: netnsPath(names.netns), proxyUrl: doorUrl(cfg.proxyPort), user: cfg.user, keepCaps: cfg.keepCaps, families: cfg.socketFamilies, degrade: s.degrade }));
    s.onTeardown("CMD", () => run.end());
    const watch = await s.step("watch", () => openWatch(s, names));
    const { plan, fenced } = await s.step("fence", () => fence(s, names, watch, ipv6, choosing));
    const detection = await s.step("verify", () => verify(s, watch, fenced));
    // The fence as installed is read back before sandbox_ready (a signal after it is CMD's), after
    // the self-test's probes: the reference of every later check. The door opens meanwhile.
    const fenceRef = fenced ? { steps: plan.fence, backend: plan.config.backend, nsPath: netnsPath(names.netns) } : null;
    [supervision] = await s.step("door and fence reference", () => Promise.all([startSummaries(s, watch, fenceRef), openDoor(s, plan, door)]));
    warnIfPrivileged(s);
    // One object for the line and the state file, so `ls` says what the line said.
    const line = ready(s, plan, watch, fenced, detection);
    updateState({ ready: line });
    s.emit(line);
    run.go();
    const cmdPid = await run.started;
    s.lap("setup: CMD's init");
    if (cmdPid !== null) {
      s.cmdPid = cmdPid;
      watch.cmdStarted(cmdPid);
    }
    result = await run.done;
    s.lap("CMD");
  } catch (e) {
    result = { code: failureCode(e), exit: null, signal: null };
  } finally {
    const left = await s.teardown();
    for (const l of left) diag.error(`left behind: ${l} (proxywall gc retries)`);
    result = { ...result, code: supervisedCode(cfg, result.code, supervision) };
    stopReaper();
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onSignal);
    s.emit({ v: 1, event: "sandbox_closed", ts: nowTs(), sandbox: s.id, exit_code: result.code, cmd_exit_code: result.exit, cmd_signal: result.signal, duration_ms: Math.round(s.elapsedMs()), cleanup: left });
    result = { ...result, code: lostLinesCode(cfg.events, result.code) };
  }
  return result.code;
}

/** --fail-on-bypass: a changed fence fails the run whatever CMD's code; rejected attempts fail a run CMD passed. */
function supervisedCode(cfg: RunConfig, code: number, sup: Supervision | null): number {
  if (!cfg.failOnBypass || !sup) return code;
  const changedAt = sup.fenceChangedAt();
  if (changedAt !== null) {
    diag.error(`the fence was changed during the run, first seen ${changedAt} (--fail-on-bypass)`);
    return EXIT.fenceChanged;
  }
  if (sup.bypassed() && code === 0) {
    diag.error("bypass attempts were rejected during the run (--fail-on-bypass)");
    return EXIT.bypass;
  }
  return code;
}

/** Event lines the sink lost are said once on stderr; where stderr is gone too, by the exit status (when CMD's says nothing). */
function lostLinesCode(events: LineWriter, code: number): number {
  return reportLost(events) || code !== 0 ? code : EXIT.eventsLost;
}

/** Setup failed: says why, once, and picks the exit code. */
function failureCode(e: unknown): number {
  if (e instanceof Aborted) {
    diag.warn(`${e.message}; removing the sandbox`);
    return signalExit(e.signal);
  }
  if (e instanceof SetupError) {
    diag.error(`cannot build the sandbox: ${e.message}`);
    return EXIT.sandbox;
  }
  diag.error(e as Error);
  return EXIT.failure;
}

/** Sends a probe attempt per protocol from inside and waits to see both reported. */
async function verify(s: Setup, watch: Watch, fenced: boolean): Promise<SandboxReady["detection"]> {
  if (!fenced || watch.source === "off") return "off";
  const test = await watch.selfTest();
  if (test.ok) return "verified";
  s.degrade("detection", `the self-test failed: ${test.why}`, "see proxywall doctor", "every direct TCP/UDP connection is still rejected; bypass reports may be missing");
  return "unverified";
}

/** --keep-caps: says which of proxywall's capabilities that reach the wall CMD keeps, if any. */
function warnIfPrivileged(s: Setup): void {
  if (!s.cfg.keepCaps) return;
  const uid = process.getuid?.() ?? 0;
  const kept = capsCmdWouldKeep(capSets(readFileSync("/proc/self/status", "latin1")), uid, s.cfg.user?.uid ?? uid);
  if (kept === 0n) return;
  s.degrade(
    "privileges",
    `CMD keeps ${capNames(kept).join(", ")} (--keep-caps), so it could delete the rules, open raw sockets or leave the namespace`,
    `drop --keep-caps: CMD then keeps only ${KEPT_CAPS.map((c) => `CAP_${c}`).join(", ")}`,
    "the rules hold as long as CMD does not remove them",
  );
}

function ready(s: Setup, plan: SandboxPlan, watch: Watch, fenced: boolean, detection: SandboxReady["detection"]): SandboxReady {
  return {
    v: 1,
    event: "sandbox_ready",
    ts: nowTs(),
    sandbox: s.id,
    netns: plan.names.netns,
    sandbox_ipv4: INSIDE.v4,
    sandbox_ipv6: plan.config.ipv6 ? INSIDE.v6 : null,
    proxy: { url: plan.proxyUrl, port: s.cfg.proxyPort, builtin: s.cfg.externalProxy === null },
    backend: fenced ? plan.config.backend : null,
    log: fenced && plan.config.features.log ? plan.config.log.kind : "none",
    monitor: watch.source,
    detection,
    degraded: s.degraded.map((d) => d.component),
    setup_ms: s.elapsedMs(),
  };
}
