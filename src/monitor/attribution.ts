// Naming the process behind a rejected packet: socket table of the sandbox namespace, then the fd
// tables of the processes inside it. Never a guess: no socket, no owner, no name.
import type { ProcessInfo } from "../events/schema.ts";
import { ancestors, processFacts } from "./process-info.ts";
import { findSockets, NamespaceProcesses, socketHolders, type SocketKey } from "./procfs-sockets.ts";

export class Attributor {
  private readonly procs: NamespaceProcesses;

  /** `cmdPid` ends the ancestor chains (null while CMD has not started). */
  constructor(
    nsPath: string,
    private readonly cmdPid: () => number | null,
  ) {
    this.procs = new NamespaceProcesses(nsPath);
  }

  attribute(key: SocketKey, held: boolean): Exclude<ProcessInfo, null> {
    const pids = this.procs.pids();
    if (pids.length === 0) return { resolved: false, why: "no process is left in the sandbox" };
    const sockets = findSockets(pids[0]!, key);
    if (sockets.length === 0) {
      return {
        resolved: false,
        why: held
          ? "the socket was gone although the packet was held (it was closed by another thread)"
          : `the socket was already closed when proxywall looked (a short-lived ${key.proto.toUpperCase()} client)`,
      };
    }
    const holders = socketHolders(pids, sockets.map((s) => s.inode));
    const facts = holders.map(processFacts).filter((f) => f !== null);
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
