// What proxywall reports about a process: pid, executable, command line, uid, start time, and
// its ancestors up to CMD.
import { readFileSync, readlinkSync } from "node:fs";
import { statFields, statusNumber } from "../sys/procfs.ts";

export interface ProcessFacts {
  pid: number;
  ppid: number;
  exe: string | null;
  cmdline: string[];
  uid: number | null;
  start_time: string | null;
}

let bootMs: number | null = null;
function bootTimeMs(): number {
  if (bootMs === null) {
    const m = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"));
    bootMs = m ? Number(m[1]) * 1000 : 0;
  }
  return bootMs;
}

/** USER_HZ: 100 on every Linux ABI proxywall ships for. */
const TICKS_PER_SECOND = 100;

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
  const uid = statusNumber(pid, "Uid");
  const start_time = Number.isFinite(startTicks) && bootTimeMs() > 0 ? new Date(bootTimeMs() + (startTicks * 1000) / TICKS_PER_SECOND).toISOString() : null;
  return { pid, ppid, exe, cmdline, uid, start_time };
}

/** Parents of `pid`, nearest first, up to and including `stopAt` (CMD), at most 32. */
export function ancestors(ppid: number, stopAt: number | null): { pid: number; exe: string | null }[] {
  const chain: { pid: number; exe: string | null }[] = [];
  let pid = ppid;
  for (let i = 0; i < 32 && pid > 1; i++) {
    const f = processFacts(pid);
    if (!f) break;
    chain.push({ pid, exe: f.exe });
    if (pid === stopAt) break;
    pid = f.ppid;
  }
  return chain;
}
