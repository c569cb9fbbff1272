// Reading process facts from /proc.
import { readdirSync, readFileSync, statSync } from "node:fs";

/**
 * The fields of /proc/PID/stat from field 3 (state) on, so that field N is at index N - 3; null
 * when the process is gone. The command name (field 2) may hold spaces and parentheses: fields
 * resume after the last ")".
 */
export function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or null if gone. */
export function processStartTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** The parent of `pid` (field 4 of /proc/PID/stat), or null if gone. */
export function parentPid(pid: number): number | null {
  const ppid = statFields(pid)?.[1];
  return ppid === undefined ? null : Number(ppid);
}

const statusLines = new Map<string, RegExp>();

/** The first number of line `key:` in /proc/PID/status ("Uid", "Tgid", ...), or null. */
export function statusNumber(pid: number, key: string): number | null {
  let line = statusLines.get(key);
  if (!line) statusLines.set(key, (line = new RegExp(`^${key}:\\s+(\\d+)`, "m")));
  try {
    const m = line.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Device and inode of a namespace file (/run/netns/NAME, /proc/PID/ns/net): the namespace's identity; null if gone. */
export function namespaceId(path: string): { ino: number; dev: number } | null {
  try {
    const { ino, dev } = statSync(path);
    return { ino, dev };
  } catch {
    return null;
  }
}

/** Processes whose network namespace is the one bound at `nsPath` (what `ip netns pids` does). */
export function pidsInNetns(nsPath: string): number[] {
  const target = namespaceId(nsPath);
  if (!target) return [];
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const ns = namespaceId(`/proc/${name}/ns/net`);
    if (ns && ns.ino === target.ino && ns.dev === target.dev) pids.push(Number(name));
  }
  return pids;
}
