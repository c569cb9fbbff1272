// Naming the process behind a rejected packet: its socket (sock_diag, else the namespace's socket
// tables), then the processes inside the namespace that hold it. Works only while the socket
// exists: callers that hold the packet (NFQUEUE) or look within milliseconds of it get an answer,
// others get "unresolved". Never a guess: no socket, no owner, no name.
import type { ProcessInfo } from "../events/schema.ts";
import { hasSource, type FiveTuple } from "../net/five-tuple.ts";
import { ancestors, processFacts } from "./process-info.ts";
import { NamespaceProcesses } from "./namespace-processes.ts";
import { socketHolders } from "./socket-holders.ts";
import { findSockets, type SocketEntry } from "./socket-table.ts";
import { SockDiag } from "./sock-diag.ts";

/**
 * A held SYN waits for its attribution, and the watch thread reads everything else meanwhile.
 * Under a flood attribution gets at most this share of each window; attempts beyond it are
 * reported without a process (and still counted exactly in bypass_totals) so that the verdicts
 * and the reports keep up.
 */
const WINDOW_MS = 100;
const BUDGET_MS = 25;

export class Attributor {
  private readonly procs: NamespaceProcesses;
  private diag: SockDiag | null = null;
  private windowStart = 0;
  private spent = 0;

  /** `cmdPid` ends the ancestor chains (null while CMD has not started). */
  constructor(
    nsPath: string,
    private readonly cmdPid: () => number | null,
  ) {
    this.procs = new NamespaceProcesses(nsPath);
    // The first scan stats every pid on the host; do it now, not while a SYN is held.
    for (const _ of this.procs.newestFirst());
    try {
      this.diag = new SockDiag(nsPath);
    } catch {
      // Without sock_diag the /proc tables still answer, only slower.
    }
  }

  /** The socket(s) the packet came from: by an exact sock_diag lookup where possible. */
  private sockets(t: FiveTuple): SocketEntry[] {
    if (this.diag && hasSource(t)) {
      const s = this.diag.find(t);
      if (s && s.inode > 0) return [{ inode: s.inode, state: s.state }];
      if (t.proto === "tcp") return [];
    }
    // No sock_diag, or a UDP lookup it could not answer: the namespace's /proc tables.
    for (const pid of this.procs.newestFirst()) return findSockets(pid, t);
    return [];
  }

  close(): void {
    this.diag?.close();
    this.diag = null;
  }

  attribute(t: FiveTuple, held: boolean): Exclude<ProcessInfo, null> {
    const t0 = performance.now();
    if (t0 - this.windowStart > WINDOW_MS) {
      this.windowStart = t0;
      this.spent = 0;
    }
    if (this.spent > BUDGET_MS) {
      return { resolved: false, why: "not looked up: attempts came faster than proxywall attributes them (a flood); bypass_totals still counts every one" };
    }
    try {
      return this.lookup(t, held);
    } finally {
      this.spent += performance.now() - t0;
    }
  }

  private lookup(t: FiveTuple, held: boolean): Exclude<ProcessInfo, null> {
    const sockets = this.sockets(t);
    if (sockets.length === 0) {
      return {
        resolved: false,
        why: held
          ? "the socket was gone although the packet was held (it was closed by another thread)"
          : `the socket was already closed when proxywall looked (a short-lived ${t.proto.toUpperCase()} client)`,
      };
    }
    const holders = socketHolders(this.procs.newestFirst(), sockets.map((s) => s.inode), (pid) => this.procs.inside(pid), processFacts);
    const facts = holders.filter((f) => f !== null);
    if (facts.length === 0) return { resolved: false, why: "the socket exists but no process in the sandbox holds it any more" };
    // Oldest first: a socket shared by fork() belongs first to the process that made it.
    facts.sort((a, b) => (a.start_time ?? "").localeCompare(b.start_time ?? "") || a.pid - b.pid);
    const [first, ...rest] = facts;
    const { ppid, ...own } = first!;
    return {
      resolved: true,
      ...own,
      ancestors: own.pid === this.cmdPid() ? [] : ancestors(ppid, this.cmdPid()),
      also_held_by: rest.map(({ ppid: _ppid, ...f }) => f),
    };
  }
}
