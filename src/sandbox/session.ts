// One `proxywall run`, as the README draws it: claim an id, build the namespace, open the watch,
// install the fence, verify, open the door, run CMD, tear down. Each step lives in steps.ts and
// registers its own undo, so every way out (CMD's end, a failure, a signal) removes exactly what
// exists, in reverse order.
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { SandboxReady } from "../events/schema.ts";
import type { Watch } from "../monitor/watch.ts";
import { newSandboxId, sandboxNames, INSIDE } from "../plan/addresses.ts";
import type { SandboxPlan } from "../plan/sandbox-plan.ts";
import { startReaper } from "../sys/reaper.ts";
import { ownChildren } from "../sys/tools.ts";
import { netnsPath } from "../sys/netns.ts";
import { EXIT } from "../exit-codes.ts";
import { SetupError } from "./apply.ts";
import { FORWARDED_SIGNALS, spawnCmd, waitCmd, type CmdResult } from "./cmd.ts";
import { Aborted, Setup, signalExit, type RunConfig } from "./setup.ts";
import { claimId, collectStale, makeNamespace, openWatch } from "./steps.ts";
import { fence } from "./fence-step.ts";
import { loadDoor, openDoor } from "./door.ts";
import { startSummaries } from "./summaries.ts";
import { chooseFence, runWants } from "../fence/select.ts";


export async function runSandbox(cfg: RunConfig): Promise<number> {
  const s = new Setup(newSandboxId(), cfg);
  const names = sandboxNames(s.id);
  let child: Bun.Subprocess | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
    else s.abortedBy ??= sig;
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onSignal);
  const stopReaper = process.pid === 1 ? startReaper((pid) => pid === child?.pid || ownChildren.has(pid)) : () => {};

  let result: CmdResult = { code: EXIT.failure, exit: null, signal: null };
  let bypassed = () => false;
  try {
    // Which firewall tool and features (check-only runs), asked while the sandbox is being built.
    const choosing = chooseFence(runWants(cfg.backend, cfg.monitor));
    choosing.catch(() => {});
    const door = loadDoor();
    door.catch(() => {});
    const updateState = await s.step("state", () => claimId(s, names));
    // Stale sandboxes of dead owners go while this one is built: gc touches only theirs.
    const [{ ipv6 }] = await s.step("namespace", () => Promise.all([makeNamespace(s, names), collectStale(s)]));
    const watch = await s.step("watch", () => openWatch(s, names));
    const { plan, fenced } = await s.step("fence", () => fence(s, names, watch, ipv6, choosing));
    const detection = await s.step("verify", () => verify(s, watch, fenced));
    await s.step("door", () => openDoor(s, plan, door));
    warnIfRoot(s);
    // One object for the line and the state file, so `ls` says what the line said.
    const line = ready(s, plan, watch, fenced, detection);
    updateState({ ready: line });
    s.emit(line);
    bypassed = startSummaries(s, watch);
    const started = spawnCmd(cfg.cmd, netnsPath(names.netns), plan.proxyUrl, cfg.user);
    if ("code" in started) result = started;
    else {
      child = started;
      s.cmdPid = child.pid;
      watch.cmdStarted(child.pid);
      result = await waitCmd(child);
      s.lap("CMD");
    }
  } catch (e) {
    result = { code: failureCode(e), exit: null, signal: null };
  } finally {
    const left = await s.teardown();
    for (const l of left) diag.error(`left behind: ${l} (proxywall gc retries)`);
    if (cfg.failOnBypass && bypassed() && result.code === 0) {
      result = { ...result, code: EXIT.bypass };
      diag.error("bypass attempts were rejected during the run (--fail-on-bypass)");
    }
    stopReaper();
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onSignal);
    s.emit({ v: 1, event: "sandbox_closed", ts: nowTs(), sandbox: s.id, exit_code: result.code, cmd_exit_code: result.exit, cmd_signal: result.signal, duration_ms: Math.round(s.elapsedMs()), cleanup: left });
  }
  return result.code;
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

function warnIfRoot(s: Setup): void {
  if (s.cfg.user !== null || (process.getuid?.() ?? 0) !== 0) return;
  s.degrade(
    "privileges",
    "CMD runs as root and keeps CAP_NET_ADMIN inside its namespace, so it could delete the rules",
    "pass --user UID[:GID] to run CMD without privileges",
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
