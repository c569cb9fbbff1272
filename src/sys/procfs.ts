// Reading process facts from /proc.
import { readdirSync, readFileSync, statSync } from "node:fs";

/** Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or null if gone. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Processes whose network namespace is the one bound at `nsPath` (what `ip netns pids` does). */
export function pidsInNetns(nsPath: string): number[] {
  let target: { ino: number; dev: number };
  try {
    target = statSync(nsPath);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = statSync(`/proc/${name}/ns/net`);
      if (st.ino === target.ino && st.dev === target.dev) pids.push(Number(name));
    } catch {}
  }
  return pids;
}
