// Addresses and names of one sandbox, derived from its id and its slot in the address pool.
import { sandboxLogPrefix } from "../kernel-log/log-prefix.ts";
import { canonicalIPv6, intToIPv4, ipv4ToInt, isIPv4 } from "../net/ip-address.ts";

export const DEFAULT_POOL = "10.200.0.0/16";
/**
 * ULA /32 for sandboxes. A sandbox's /64 spells its IPv4 /30 network in its next 32 bits
 * (10.200.0.4 -> fd70:7077:ac8:4::/64), so whatever pool or state dir a sandbox came from, two
 * sandboxes never share an IPv6 subnet unless they share the IPv4 one, which the host route check
 * and the claim files prevent.
 */
export const IPV6_PREFIX = "fd70:7077";

export interface Pool {
  base: number;
  prefixLen: number;
  /** How many /30 slots the pool holds. */
  slots: number;
  text: string;
}

/** Parses an IPv4 CIDR pool that holds at least one /30; null with the reason otherwise. */
export function parsePool(text: string): Pool | string {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!)) return "must be an IPv4 CIDR such as 10.200.0.0/16";
  const prefixLen = Number(m[2]);
  if (prefixLen < 8 || prefixLen > 30) return "prefix length must be from 8 to 30";
  const mask = prefixLen === 0 ? 0 : (~0 << (32 - prefixLen)) >>> 0;
  const base = ipv4ToInt(m[1]!);
  if ((base & mask) >>> 0 !== base) return `host bits are set (did you mean ${intToIPv4((base & mask) >>> 0)}/${prefixLen}?)`;
  // Slot numbers also name the IPv6 /64, which has 16 bits for them.
  return { base, prefixLen, slots: Math.min(2 ** (30 - prefixLen), 65536), text };
}

export interface SandboxAddresses {
  slot: number;
  hostV4: string;
  sandboxV4: string;
  v4PrefixLen: 30;
  hostV6: string;
  sandboxV6: string;
  v6PrefixLen: 64;
}

export function slotAddresses(pool: Pool, slot: number): SandboxAddresses {
  if (slot < 0 || slot >= pool.slots) throw new RangeError(`slot ${slot} is outside pool ${pool.text}`);
  const net = pool.base + slot * 4;
  const v6 = `${IPV6_PREFIX}:${(net >>> 16).toString(16)}:${(net & 0xffff).toString(16)}`;
  return {
    slot,
    hostV4: intToIPv4(net + 1),
    sandboxV4: intToIPv4(net + 2),
    v4PrefixLen: 30,
    hostV6: canonicalIPv6(`${v6}::1`)!,
    sandboxV6: canonicalIPv6(`${v6}::2`)!,
    v6PrefixLen: 64,
  };
}

export interface SandboxNames {
  id: string;
  netns: string;
  hostIf: string;
  sandboxIf: string;
  logPrefix: string;
}

export const ID_PATTERN = /^[0-9a-f]{8}$/;

/** Names derived from the 8-hex id; interface names stay within the kernel's 15 characters. */
export function sandboxNames(id: string): SandboxNames {
  return { id, netns: `pw-${id}`, hostIf: `pwh${id}`, sandboxIf: `pws${id}`, logPrefix: sandboxLogPrefix(id) };
}

export function newSandboxId(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
