// What a benchmark leaves behind, and removing it. A sandbox is a namespace pw-ID and, in the
// state directory, `<id>.json` (its state) and `<id>.lock` (flock held by its owner for life);
// nothing else of it exists outside the namespace. The seed's per-step plan (bench/per-step.ts)
// also makes a host-side link, tracked here too.
import { existsSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { FROM_SOURCE, ROOT, STATE_DIR, systemTool, type Event } from "./support.ts";

/** The namespaces and links some step made or a sandbox_ready line named, and what still exists. */
export class Leftovers {
  private readonly netns = new Set<string>();
  private readonly links = new Set<string>();
  private readonly sandboxes = new Set<string>();

  /** Remembers a namespace (and a host-side link) that some step created, to check for them later. */
  track(netns: string | undefined, link?: string): void {
    if (netns) this.netns.add(netns);
    if (link) this.links.add(link);
  }

  trackEvents(events: readonly Event[]): void {
    for (const e of events) {
      if (e.event === "sandbox_ready") this.track(e.netns as string);
      if (typeof e.sandbox === "string" && /^[0-9a-f]{8}$/.test(e.sandbox)) this.sandboxes.add(e.sandbox);
    }
  }

  /** The ids of the proxywall sandboxes seen in tracked events (for cleanupOwn). */
  ids(): string[] {
    return [...this.sandboxes];
  }

  /** Everything tracked that still exists, plus every sandbox file in the state directory. */
  remaining(): string[] {
    const left: string[] = [];
    for (const n of this.netns) if (existsSync(`/run/netns/${n}`)) left.push(`namespace ${n}`);
    for (const l of this.links) if (existsSync(`/sys/class/net/${l}`)) left.push(`link ${l}`);
    for (const f of stateFiles()) left.push(`state ${f}`);
    return left;
  }
}

/**
 * Files in the benchmark state directory that stand for a sandbox (`<id>.json`, `<id>.lock`,
 * half-written `<id>.json.tmp`); empty when none is left.
 */
export function stateFiles(): string[] {
  if (!existsSync(STATE_DIR)) return [];
  return readdirSync(STATE_DIR)
    .filter((name) => /^[0-9a-f]{8}\./.test(name))
    .map((name) => join(STATE_DIR, name));
}

/**
 * Final cleanup: `proxywall gc` on the benchmark state directory (removes sandboxes whose owner is
 * gone: after a crash or SIGKILL, all of them; a live owner holds its lock and is left alone), then
 * the directory itself when nothing is left in it. Returns a description of anything still there.
 */
export function cleanupState(leftovers: Leftovers): string[] {
  if (stateFiles().length > 0) {
    const gc = Bun.spawnSync([...FROM_SOURCE.argv, "gc", "--state-dir", STATE_DIR], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    const said = (gc.stdout.toString() + gc.stderr.toString()).trim();
    if (said) console.error(`cleanup: proxywall gc: ${said}`);
  }
  // rmdir(2) removes only an empty directory: a sandbox made meanwhile keeps it, as proxywall's own.
  try {
    rmdirSync(STATE_DIR);
  } catch {}
  return leftovers.remaining();
}

/**
 * cleanupState, then what is left of this benchmark's own sandboxes only: the namespaces and links
 * tracked, and the state and lock files of the ids given. Other benchmarks' sandboxes may be alive
 * in the same state directory at the same time.
 */
export function cleanupOwn(leftovers: Leftovers, ids: Iterable<string> = leftovers.ids()): string[] {
  const own = [...ids];
  return cleanupState(leftovers).filter((l) => {
    if (!l.startsWith("state ")) return true;
    const name = l.slice(l.lastIndexOf("/") + 1);
    return own.some((id) => name.startsWith(`${id}.`));
  });
}

/** The network namespaces on this host whose names start with pw- (proxywall's), from `ip netns list`. */
export function pwNamespaces(): string[] {
  const ip = systemTool("ip", true);
  if (!ip) return [];
  const p = Bun.spawnSync([ip, "netns", "list"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  return p.stdout
    .toString()
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith("pw-"));
}

/** `ip netns list | grep pw-` after a benchmark, telling its own sandboxes' namespaces from others'. */
export function namespacesNote(ownIds: Iterable<string>): string {
  const own = new Set([...ownIds].map((id) => `pw-${id}`));
  const ns = pwNamespaces();
  const mine = ns.filter((n) => own.has(n));
  if (ns.length === 0) return "pw- namespaces on this host afterwards: none";
  return `pw- namespaces on this host afterwards: ${mine.length > 0 ? `THIS BENCHMARK'S: ${mine.join(" ")}` : "none of this benchmark's"}${ns.length > mine.length ? `; others' (tests or benchmarks running at the same time): ${ns.filter((n) => !own.has(n)).join(" ")}` : ""}`;
}

/** cleanupOwn as a problem for the benchmark's report: `LEFT BEHIND: ...`, or nothing. */
export function leftBehind(leftovers: Leftovers, ids?: Iterable<string>): string[] {
  const left = cleanupOwn(leftovers, ids);
  return left.length > 0 ? [`LEFT BEHIND: ${left.join(", ")}`] : [];
}
