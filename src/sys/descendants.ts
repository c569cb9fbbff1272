// Ending every descendant of a process by scanning /proc, for where no PID namespace could be
// made: the scanning process is a child subreaper, so orphans stay in its tree whatever they do
// (double fork, setsid, unshare), and the scan repeats until it finds none or time is up.
import { readdirSync } from "node:fs";
import { ptr } from "bun:ffi";
import { libc } from "./libc.ts";
import { statFields } from "./procfs.ts";

/** Live descendants of `root`, from one pass over /proc (pid -> parent). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && f[0] !== "Z" && f[0] !== "X") parent.set(Number(name), Number(f[1]));
  }
  const out: number[] = [];
  for (const pid of parent.keys()) {
    let p = parent.get(pid);
    for (let depth = 0; p !== undefined && p > 1 && depth < 4096; depth++) {
      if (p === root) {
        out.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

/**
 * SIGKILLs the descendants of `root` (the caller itself, a subreaper) and reaps them, until a scan
 * finds none or `budgetMs` is spent. Returns how many distinct processes were ended.
 */
export async function killDescendants(root: number, budgetMs: number): Promise<number> {
  const ended = new Set<number>();
  const status = new Int32Array(1);
  const deadline = performance.now() + budgetMs;
  for (;;) {
    const found = descendants(root);
    for (const pid of found) {
      try {
        process.kill(pid, "SIGKILL");
        ended.add(pid);
      } catch {}
    }
    // Reap what died (WNOHANG), so the next scan does not count zombies.
    while (libc().waitpid(-1, ptr(status), 1) > 0);
    if (found.length === 0 || performance.now() > deadline) return ended.size;
    await Bun.sleep(5);
  }
}
