// Effective capabilities of this process, from /proc/self/status.
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

/** Building a sandbox needs CAP_NET_ADMIN (links, rules) and CAP_SYS_ADMIN (namespace mount). */
export function canBuildSandbox(): boolean {
  const caps = effectiveCaps();
  return hasCap(CAP_NET_ADMIN, caps) && hasCap(CAP_SYS_ADMIN, caps);
}
