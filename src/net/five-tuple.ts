// The one description of a connection attempt that every layer shares: a decoded IP packet
// (ip-packet.ts), a kernel-log line's fields (kernel-log/log-fields.ts), and the key a socket is
// looked up by (monitor/attribution.ts).

/**
 * The transport protocol by name: TCP and UDP (the fence rejects them), UDP-Lite, SCTP and DCCP
 * (which have ports), ICMP and ICMPv6, a few more by their usual names, and any other protocol
 * number N as "ip-N". The fence logs every one it rejects or drops.
 */
export type Proto = "tcp" | "udp" | "udplite" | "sctp" | "dccp" | "icmp" | "icmpv6" | "igmp" | "gre" | "esp" | "ah" | `ip-${number}`;

/** IP protocol numbers to names (IANA); the rest are "ip-N". */
export const PROTO_NAMES: Readonly<Record<number, Proto>> = { 1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp", 136: "udplite" };

export function protoName(n: number): Proto {
  return PROTO_NAMES[n] ?? `ip-${n}`;
}

/** Protocols whose header starts with 16-bit source and destination ports (and sock_diag knows TCP, UDP and UDP-Lite). */
export function hasPorts(p: Proto): boolean {
  return p === "tcp" || p === "udp" || p === "udplite" || p === "sctp" || p === "dccp";
}
export type Family = "ipv4" | "ipv6";

/**
 * Protocol, family and both ends. The source end is null where a log line lacks SRC=/SPT=; ports
 * are 0 for protocols without them (ICMP and the like).
 */
export interface FiveTuple {
  proto: Proto;
  family: Family;
  srcAddr: string | null;
  srcPort: number | null;
  dstAddr: string;
  dstPort: number;
  /**
   * The interface the packet left by, where the source knows it (NFLOG, NFQUEUE): a socket bound to
   * a link-local address is found only with its interface.
   */
  outIfindex?: number | null;
}

/** A tuple whose source end is known (every decoded packet's is). */
export interface FullTuple extends FiveTuple {
  srcAddr: string;
  srcPort: number;
}

/** Whether the tuple names its source end (an exact socket lookup needs it). */
export function hasSource(t: FiveTuple): t is FullTuple {
  return t.srcAddr !== null && t.srcPort !== null;
}
