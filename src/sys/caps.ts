// The capabilities CMD keeps, and dropping the rest from every set of the calling thread before it
// starts CMD (src/sandbox/init.ts). Capabilities are per thread in Linux, and a child inherits the
// sets of the thread that made it: the init drops them on the thread that spawns CMD.
//
// An allow list, not a deny list: a capability a future kernel adds is dropped too. What is kept
// is Docker's default set without CAP_NET_RAW, so a root CMD still does what root does in a
// container (own and write any file, bind ports below 1024, change user, signal its own
// processes), and nothing that reaches the fence (NET_ADMIN, NET_RAW, BPF), the kernel (SYS_ADMIN,
// SYS_MODULE, SYS_RAWIO, PERFMON) or other processes (SYS_PTRACE, DAC_READ_SEARCH's
// open_by_handle_at).
import { readFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, libc } from "./libc.ts";

export const CAP_NAMES = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
  "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
  "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
  "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
  "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
  "CHECKPOINT_RESTORE",
] as const;

export type CapName = (typeof CAP_NAMES)[number];

/** What CMD may keep (Docker's default set without NET_RAW). */
export const KEPT_CAPS: readonly CapName[] = [
  "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
  "NET_BIND_SERVICE", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
];

/** The ones whose loss the issue names: each reaches the wall or the kernel. */
export const WALL_CAPS: readonly CapName[] = ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "BPF", "PERFMON", "SYS_RAWIO"];

export function capBit(name: CapName): bigint {
  return 1n << BigInt(CAP_NAMES.indexOf(name));
}

export function maskOf(names: readonly CapName[]): bigint {
  return names.reduce((m, n) => m | capBit(n), 0n);
}

export const KEPT_MASK = maskOf(KEPT_CAPS);

/** Names of the bits set in `mask` ("CAP_NET_ADMIN", ...; unknown bits as "cap_N"). */
export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(i < CAP_NAMES.length ? `CAP_${CAP_NAMES[i]}` : `cap_${i}`);
  return out;
}

/** The capability sets of a process, from its /proc/PID/status text. */
export function capSets(status: string): { inh: bigint; prm: bigint; eff: bigint; bnd: bigint; amb: bigint } {
  const get = (k: string) => {
    const m = new RegExp(`^Cap${k}:\\s*([0-9a-f]+)$`, "m").exec(status);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  return { inh: get("Inh"), prm: get("Prm"), eff: get("Eff"), bnd: get("Bnd"), amb: get("Amb") };
}

/**
 * What a CMD would hold, of the capabilities that reach the wall, when it keeps proxywall's sets
 * (--keep-caps): a root CMD gets the bounding set at exec; a CMD that changes from root to
 * another user loses everything (the kernel clears the sets); one that stays non-root keeps the
 * ambient set.
 */
export function capsCmdWouldKeep(sets: { bnd: bigint; amb: bigint }, proxywallUid: number, cmdUid: number): bigint {
  const wall = ~KEPT_MASK & ((1n << 64n) - 1n);
  if (cmdUid === 0) return sets.bnd & wall;
  if (proxywallUid === 0) return 0n;
  return sets.amb & wall;
}

const PR_CAPBSET_DROP = 24;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

function lastCap(): number {
  try {
    return Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
  } catch {
    return 63; // dropping a capability the kernel does not know fails with EINVAL, which is skipped
  }
}

/**
 * Drops every capability outside KEPT_CAPS from the bounding set (so no exec, file capability or
 * setuid program brings one back), clears the ambient set, and keeps in the effective, permitted
 * and inheritable sets only what is kept. Call it while CAP_SETPCAP is still held (before a
 * change of user); `bounding` is false when the bounding set could not be narrowed (no
 * CAP_SETPCAP). Throws with the step that failed.
 */
export function dropCapabilities(): { bounding: boolean } {
  const c = libc();
  const last = Math.min(lastCap(), 63);
  let bounding = true;
  for (let cap = 0; cap <= last && bounding; cap++) {
    if ((KEPT_MASK >> BigInt(cap)) & 1n) continue;
    if (c.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) === 0) continue;
    const e = errno();
    // EPERM: no CAP_SETPCAP (a non-root proxywall with ambient capabilities). no_new_privs, set
    // with this drop, still keeps exec from granting anything; the caller says so.
    if (e === 1) bounding = false;
    else if (e !== 22) throw new Error(`prctl(PR_CAPBSET_DROP, ${cap}) failed: errno ${e}`);
  }
  // Kernels before 4.3 have no ambient set: EINVAL, nothing to clear.
  if (c.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) !== 0 && errno() !== 22) throw new Error(`clearing the ambient capabilities failed: errno ${errno()}`);
  limitThreadCaps();
  return { bounding };
}

/** effective, permitted and inheritable of this thread narrowed to KEPT_CAPS (capget, capset). */
export function limitThreadCaps(): void {
  const c = libc();
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  // Two 32-bit halves, each {effective, permitted, inheritable}.
  const data = new Uint32Array(6);
  if (c.capget(ptr(header), ptr(data)) !== 0) throw new Error(`capget failed: errno ${errno()}`);
  const keep = [Number(KEPT_MASK & 0xffffffffn), Number(KEPT_MASK >> 32n)];
  for (let half = 0; half < 2; half++) for (let set = 0; set < 3; set++) data[half * 3 + set] = data[half * 3 + set]! & keep[half]!;
  if (c.capset(ptr(header), ptr(data)) !== 0) throw new Error(`capset failed: errno ${errno()}`);
}
