// The one description of a connection attempt that every layer shares: a decoded IP packet
// (ip-packet.ts), a kernel-log line's fields (kernel-log/log-fields.ts), and the key a socket is
// looked up by (monitor/attribution.ts).

export type Proto = "tcp" | "udp";
export type Family = "ipv4" | "ipv6";

/** Protocol, family and both ends. The source end is null where a log line lacks SRC=/SPT=. */
export interface FiveTuple {
  proto: Proto;
  family: Family;
  srcAddr: string | null;
  srcPort: number | null;
  dstAddr: string;
  dstPort: number;
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
