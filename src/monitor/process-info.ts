// What proxywall reports about a process: pid (as proxywall sees it, and as CMD's own processes
// see it in their PID namespace), executable, command line, uid, start time, and its ancestors up
// to CMD.
import { readFileSync, readlinkSync } from "node:fs";
import { startTimeMs, statFields } from "../sys/procfs.ts";

export interface ProcessFacts {
  pid: number;
  ppid: number;
  exe: string | null;
  cmdline: string[];
  uid: number | null;
  start_time: string | null;
  /** The pid in the process's own PID namespace (the last NSpid field); null where unknown. */
  ns_pid: number | null;
}

/** Real uid and the innermost pid from /proc/PID/status text. */
export function statusIds(status: string): { uid: number | null; nsPid: number | null } {
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  // "NSpid:\t4242\t7": one pid per nested namespace, outermost (proxywall's) first.
  const ns = /^NSpid:\s+([\d\s]+?)\s*$/m.exec(status);
  const last = ns ? ns[1]!.split(/\s+/).pop() : undefined;
  return { uid: uid ? Number(uid[1]) : null, nsPid: last ? Number(last) : null };
}

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return "";
  }
}

/** The pid `pid` has in its own PID namespace, or null. */
export function statusNsPid(pid: number): number | null {
  return statusIds(readStatus(pid)).nsPid;
}

export function processFacts(pid: number): ProcessFacts | null {
  const fields = statFields(pid);
  if (!fields) return null;
  const ppid = Number(fields[1]);
  const startTicks = Number(fields[19]);
  let exe: string | null = null;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {}
  let cmdline: string[] = [];
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (cmdline[cmdline.length - 1] === "") cmdline.pop();
  } catch {}
  const { uid, nsPid } = statusIds(readStatus(pid));
  // To the kernel's tick (10 ms), never after the true start: see startTimeMs.
  const startMs = startTimeMs(startTicks);
  const start_time = startMs === null ? null : new Date(startMs).toISOString();
  return { pid, ppid, exe, cmdline, uid, start_time, ns_pid: nsPid };
}

/**
 * Parents of `pid`, nearest first, up to and including `stopAt` (CMD), at most 32. A namespace's
 * init (CMD's init, which orphans are given to) ends the chain as PID 1 does, unlisted.
 */
export function ancestors(ppid: number, stopAt: number | null): { pid: number; exe: string | null }[] {
  const chain: { pid: number; exe: string | null }[] = [];
  let pid = ppid;
  for (let i = 0; i < 32 && pid > 1; i++) {
    const f = processFacts(pid);
    if (!f || (f.ns_pid === 1 && pid !== stopAt)) break;
    chain.push({ pid, exe: f.exe });
    if (pid === stopAt) break;
    pid = f.ppid;
  }
  return chain;
}
