// What every step of a run shares: the sandbox id, the event line writer, the degraded parts, the
// undo stack and the signal that may stop setup. Each step pushes its own undo before it acts, so
// a failure or a signal at any point removes exactly what exists, in reverse order.
import { constants } from "node:os";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { Degraded, EventLine } from "../events/schema.ts";
import type { LineWriter } from "../events/line-writer.ts";
import type { MonitorChoice } from "../monitor/watch.ts";
import type { Backend } from "../plan/sandbox-plan.ts";
import type { Policy } from "../policy/index.ts";

/** Setup was stopped by a signal: exit 128+N after teardown. */
export class Aborted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal} during setup`);
  }
}

export function signalExit(signal: string): number {
  return 128 + ((constants.signals as Record<string, number>)[signal] ?? 0);
}

export interface RunConfig {
  cmd: string[];
  proxyPort: number;
  /** The user's own proxy, in proxywall's namespace: the door relays to it and proxywall starts none. */
  externalProxy: { host: string; port: number } | null;
  backend: Backend | undefined;
  nflogGroup: number;
  logRate: number;
  user: { uid: number; gid: number } | null;
  /** --keep-caps: CMD keeps proxywall's capabilities (they are dropped otherwise: src/sys/caps.ts). */
  keepCaps: boolean;
  /** --allow-socket-family: families CMD may open besides unix, inet, inet6 and netlink. */
  socketFamilies: number[];
  stateDir: string;
  allowDegraded: boolean;
  events: LineWriter;
  monitor: MonitorChoice;
  /** Seconds between bypass_summary lines; 0 for only the final one. */
  summaryInterval: number;
  failOnBypass: boolean;
  /** What the built-in proxy serves (the guard is always in it). */
  policy: Policy;
  /** A tunnel or request with no byte either way for this long is ended. */
  idleTimeoutS: number;
  /** At most this many client connections to the built-in proxy at once. */
  maxClients: number;
}

interface Undo {
  what: string;
  fn: () => Promise<unknown> | unknown;
}

export class Setup {
  readonly t0 = performance.now();
  private tStep = this.t0;
  readonly degraded: Degraded[] = [];
  private readonly undo: Undo[] = [];
  /** What teardown could not remove (so far), one line each. */
  readonly leftBehind: string[] = [];
  /** The signal that arrived while no CMD ran to take it. */
  abortedBy: string | null = null;
  /** CMD, once it runs: where ancestor chains end. */
  cmdPid: number | null = null;

  constructor(
    readonly id: string,
    readonly cfg: RunConfig,
  ) {}

  emit = (e: EventLine): void => this.cfg.events.write(e);

  degrade = (component: string, missing: string, fix: string, still: string): void => {
    const d: Degraded = { v: 1, event: "degraded", ts: nowTs(), sandbox: this.id, component, missing, fix, still_protected: still };
    this.degraded.push(d);
    this.emit(d);
  };

  /** Runs one named setup step, timed (PROXYWALL_DEBUG), and stops if a signal came meanwhile. */
  async step<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
    const r = await fn();
    this.lap(`setup: ${what}`);
    if (this.abortedBy) throw new Aborted(this.abortedBy);
    return r;
  }

  lap(what: string): void {
    const now = performance.now();
    diag.debug(`${what} ${(now - this.tStep).toFixed(1)} ms`);
    this.tStep = now;
  }

  /** Registers how to undo what the caller is about to make. */
  onTeardown(what: string, fn: Undo["fn"]): void {
    this.undo.push({ what, fn });
  }

  /** Runs every undo, last first; returns what could not be removed. */
  async teardown(): Promise<string[]> {
    const left = this.leftBehind;
    for (const u of this.undo.reverse()) {
      try {
        const r = await u.fn();
        if (Array.isArray(r)) left.push(...(r as string[]));
      } catch (e) {
        left.push(`${u.what}: ${(e as Error).message}`);
      }
      this.lap(`teardown: ${u.what}`);
    }
    this.undo.length = 0;
    return left;
  }

  elapsedMs(): number {
    return Math.round((performance.now() - this.t0) * 10) / 10;
  }
}
