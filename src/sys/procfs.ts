// Reading process facts from /proc.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { libc } from "./libc.ts";

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

/** USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux ABI proxywall ships for. */
export const TICKS_PER_SECOND = 100;

const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;

/**
 * When the system booted, in milliseconds since the epoch, to the microsecond: the wall clock
 * minus the clock that /proc/PID/stat start times count from (CLOCK_BOOTTIME, which counts
 * suspended time too; a time namespace shifts both alike). Not /proc/stat's btime: that is whole
 * seconds, and start times came out up to a second early. Read every time, so a wall clock that
 * was set meanwhile moves start times with the event timestamps. Null where the clocks cannot be
 * read.
 */
export function bootTimeMs(): number | null {
  try {
    const ts = new BigInt64Array(2);
    const read = (clock: number) => (libc().clock_gettime(clock, ts) === 0 ? Number(ts[0]!) * 1000 + Number(ts[1]!) / 1e6 : NaN);
    // The boot clock read on both sides of the wall clock: the mean is when the wall clock was read.
    const before = read(CLOCK_BOOTTIME);
    const wall = read(CLOCK_REALTIME);
    const after = read(CLOCK_BOOTTIME);
    const boot = wall - (before + after) / 2;
    return Number.isFinite(boot) ? boot : null;
  } catch {
    return null;
  }
}

/**
 * The wall-clock time (ms since the epoch) of a start time in clock ticks since boot (field 22 of
 * /proc/PID/stat). The kernel truncates to whole ticks, so this is never after the true start and
 * at most one tick (10 ms) before it.
 */
export function startTimeMs(startTicks: number, boot = bootTimeMs()): number | null {
  if (boot === null || !Number.isFinite(startTicks) || startTicks < 0) return null;
  return boot + (startTicks * 1000) / TICKS_PER_SECOND;
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
