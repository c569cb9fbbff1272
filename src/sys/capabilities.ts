// Effective capabilities of this process, from /proc/self/status, and what to say when the ones a
// sandbox needs are missing.
import { readFileSync } from "node:fs";

export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYSLOG = 34;

export function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

export function hasCap(cap: number, caps = effectiveCaps()): boolean {
  return ((caps >> BigInt(cap)) & 1n) === 1n;
}

/** What building or watching a sandbox needs, and what for. */
const SANDBOX_CAPS = [
  { cap: CAP_NET_ADMIN, name: "CAP_NET_ADMIN", why: "links and firewall rules", flag: "NET_ADMIN" },
  { cap: CAP_SYS_ADMIN, name: "CAP_SYS_ADMIN", why: "making and entering network namespaces", flag: "SYS_ADMIN" },
] as const;

/**
 * Null when this process can build (or watch) a sandbox; else why not, naming what is missing. uid
 * 0 is told which capability it lacks (a container runtime or setpriv dropped it): "needs root"
 * would send it looking for a root it already is.
 */
export function missingSandboxCaps(uid = process.getuid?.() ?? -1, caps = effectiveCaps()): string | null {
  const missing = SANDBOX_CAPS.filter((c) => !hasCap(c.cap, caps));
  if (missing.length === 0) return null;
  const names = missing.map((c) => `${c.name} (${c.why})`).join(" and ");
  if (uid !== 0) return `needs root, or ${SANDBOX_CAPS.map((c) => c.name).join(" and ")}; uid ${uid} lacks ${names}`;
  const flags = missing.map((c) => `--cap-add ${c.flag}`).join(" ");
  return `runs as uid 0 but without ${names}: the container or the command that started it dropped ${missing.length === 1 ? "it" : "them"} (e.g. docker run ${flags})`;
}
