// Which processes hold a socket: the fd tables (/proc/PID/fd) of the processes in the sandbox.
// A socket shared by fork() has several holders, and each is reported.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { parentPid } from "../sys/procfs.ts";

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function holds(pid: number, wanted: ReadonlySet<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if (wanted.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {}
  }
  return false;
}

/**
 * Processes with an fd open on one of the socket inodes, each as `describe` sees it. Reading every fd of every process is
 * what costs, and a short-lived client may be exiting while we look; so the candidates come
 * newest first and the search stops at the first holder, then asks only its parent and its
 * children (a socket is shared by fork()) whether they hold it too.
 */
export function socketHolders<T>(candidates: Iterable<number>, inodes: readonly number[], inside: (pid: number) => boolean, describe: (pid: number) => T): T[] {
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  for (const pid of candidates) {
    if (!holds(pid, wanted)) continue;
    // Described the moment it is found: a client that exits right after its attempt may be gone
    // a few hundred microseconds later.
    const first = describe(pid);
    const relatives = [parentPid(pid), ...childrenOf(pid)].filter((r): r is number => r !== null && r > 1 && inside(r));
    return [first, ...relatives.filter((r) => holds(r, wanted)).map(describe)];
  }
  return [];
}
