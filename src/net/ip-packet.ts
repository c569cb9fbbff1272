// Decodes the raw IP packets that NFLOG and NFQUEUE deliver (network header first, no link layer)
// into their five-tuple, TCP flags and payload: TCP and UDP, and every other protocol the fence
// logs (UDP-Lite, SCTP and DCCP with their ports; ICMP, ICMPv6 and the rest with ports 0). The tuple is the same type a kernel-log line's
// fields carry, so one attribution and one event builder serve every source. Never throws:
// anything it cannot read is null.
import { protoName, type Family, type FullTuple } from "./five-tuple.ts";
import { formatIPv6 } from "./ip-address.ts";

export interface DecodedPacket extends FullTuple {
  /** TCP only: header byte 13 (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80). */
  tcpFlags?: number;
  /** ICMP and ICMPv6 only: the message type (8 echo request, 128 ICMPv6 echo request, ...). */
  icmpType?: number;
  /**
   * The TCP/UDP payload that was captured: bounded by the IP/UDP length fields and by what the
   * capture holds (NFLOG/NFQUEUE copy ranges cut long packets), so it may be shorter than sent.
   */
  l4Payload: Uint8Array;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_UDPLITE = 136;
// IPv6 extension headers walked over to reach TCP/UDP.
const IPV6_HOPOPTS = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;
const IPV6_DSTOPTS = 60;
const MAX_EXT_HEADERS = 8;

function ipv4Text(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6Text(b: Uint8Array, at: number): string {
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!;
  return formatIPv6(groups);
}

/**
 * The transport header at bytes[at, end): end is where the IP layer says the packet stops, clamped
 * to what was captured. TCP and UDP need their whole header; other protocols give what they show.
 */
function transport(
  bytes: Uint8Array,
  proto: number,
  at: number,
  end: number,
  family: Family,
  srcAddr: string,
  dstAddr: string,
): DecodedPacket | null {
  const port = (i: number) => (bytes[i]! << 8) | bytes[i + 1]!;
  const base = { family, proto: protoName(proto), srcAddr, dstAddr };
  if (proto === IPPROTO_TCP) {
    if (end - at < 20) return null;
    const headerLen = (bytes[at + 12]! >> 4) * 4;
    if (headerLen < 20) return null;
    const payloadStart = Math.min(at + headerLen, end);
    return { ...base, srcPort: port(at), dstPort: port(at + 2), tcpFlags: bytes[at + 13]!, l4Payload: bytes.subarray(payloadStart, end) };
  }
  if (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) {
    if (end - at < 8) return null;
    // UDP: 0 is legal for IPv6 jumbograms; otherwise the UDP length bounds the payload. UDP-Lite
    // has a checksum coverage there instead: the IP layer bounds its payload.
    const udpLen = proto === IPPROTO_UDP ? port(at + 4) : 0;
    const udpEnd = udpLen >= 8 ? Math.min(at + udpLen, end) : end;
    return { ...base, srcPort: port(at), dstPort: port(at + 2), l4Payload: bytes.subarray(at + 8, udpEnd) };
  }
  if (base.proto === "sctp" || base.proto === "dccp") {
    if (end - at < 4) return null;
    return { ...base, srcPort: port(at), dstPort: port(at + 2), l4Payload: new Uint8Array(0) };
  }
  const icmp = proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6;
  return { ...base, srcPort: 0, dstPort: 0, ...(icmp && end > at ? { icmpType: bytes[at]! } : {}), l4Payload: new Uint8Array(0) };
}

function decodeIPv4(bytes: Uint8Array): DecodedPacket | null {
  if (bytes.length < 20) return null;
  const ihl = (bytes[0]! & 0x0f) * 4;
  if (ihl < 20 || ihl > bytes.length) return null;
  const totalLen = (bytes[2]! << 8) | bytes[3]!;
  if (totalLen < ihl) return null;
  // A non-first fragment carries no transport header.
  const fragOffset = ((bytes[6]! & 0x1f) << 8) | bytes[7]!;
  if (fragOffset !== 0) return null;
  const end = Math.min(totalLen, bytes.length);
  return transport(bytes, bytes[9]!, ihl, end, "ipv4", ipv4Text(bytes, 12), ipv4Text(bytes, 16));
}

function decodeIPv6(bytes: Uint8Array): DecodedPacket | null {
  if (bytes.length < 40) return null;
  const payloadLen = (bytes[4]! << 8) | bytes[5]!;
  // 0 means a jumbo payload (hop-by-hop option): take what was captured.
  const end = payloadLen === 0 ? bytes.length : Math.min(40 + payloadLen, bytes.length);
  let next = bytes[6]!;
  let at = 40;
  for (let i = 0; i <= MAX_EXT_HEADERS; i++) {
    const ext = next === IPV6_HOPOPTS || next === IPV6_ROUTING || next === IPV6_FRAGMENT || next === IPV6_AH || next === IPV6_DSTOPTS;
    if (!ext) return transport(bytes, next, at, end, "ipv6", ipv6Text(bytes, 8), ipv6Text(bytes, 24));
    if (i === MAX_EXT_HEADERS || at + 8 > end) return null;
    switch (next) {
      case IPV6_HOPOPTS:
      case IPV6_ROUTING:
      case IPV6_DSTOPTS:
        next = bytes[at]!;
        at += (bytes[at + 1]! + 1) * 8;
        break;
      case IPV6_FRAGMENT: {
        const fragOffset = ((bytes[at + 2]! << 8) | bytes[at + 3]!) >> 3;
        if (fragOffset !== 0) return null;
        next = bytes[at]!;
        at += 8;
        break;
      }
      case IPV6_AH:
        next = bytes[at]!;
        at += (bytes[at + 1]! + 2) * 4;
        break;
    }
  }
  return null;
}

/**
 * Decodes an IPv4 or IPv6 packet (IPv6 extension headers hop-by-hop, routing, destination options,
 * fragment and AH are skipped). Returns null for non-first fragments and input too short to hold
 * the headers TCP and UDP need; never throws.
 */
export function decodePacket(bytes: Uint8Array): DecodedPacket | null {
  try {
    if (bytes.length < 1) return null;
    const version = bytes[0]! >> 4;
    if (version === 4) return decodeIPv4(bytes);
    if (version === 6) return decodeIPv6(bytes);
    return null;
  } catch {
    return null;
  }
}
