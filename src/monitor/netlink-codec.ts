// The netlink wire format as pure functions: building nfnetlink requests, splitting what a read
// returns into messages, reading attributes and the errno of NLMSG_ERROR, and turning chunks into
// packet messages for a reader. No FFI and no socket here (netlink-socket.ts has those), so all of
// it is tested without privileges.
//
// Constants are from the kernel UAPI headers (include/uapi/linux/netlink.h, netfilter/nfnetlink.h),
// the same on x86_64 and arm64. Multi-byte header fields are host order (little-endian on every
// architecture proxywall ships for); nfgenmsg's res_id and netfilter attributes are big-endian.
import { errnoName } from "../sys/errno.ts";

export const AF_NETLINK = 16;
export const AF_UNSPEC = 0;
export const NETLINK_NETFILTER = 12;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_ACK = 0x04;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLMSG_HDRLEN = 16;
/** nlmsghdr (16) + nfgenmsg (4). */
export const NFNL_HDRLEN = 20;
export const NLA_HDRLEN = 4;
/** nla_type without NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
export const NLA_TYPE_MASK = 0x3fff;

export const NFNL_SUBSYS_QUEUE = 3;
export const NFNL_SUBSYS_ULOG = 4;

/** An Error that carries the errno (positive) of the failed call or netlink request. */
export class NetlinkError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = "NetlinkError";
  }
}

export function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
}

/** A netfilter netlink request: nlmsghdr + nfgenmsg, then attributes appended with the add* methods. */
export class NfnlMessage {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = NFNL_HDRLEN;

  constructor(subsys: number, msgType: number, flags: number, seq: number, resId: number, family = AF_UNSPEC) {
    this.view.setUint16(4, (subsys << 8) | msgType, true);
    this.view.setUint16(6, flags, true);
    this.view.setUint32(8, seq >>> 0, true);
    this.buf[16] = family;
    this.buf[17] = 0; // NFNETLINK_V0
    this.view.setUint16(18, resId, false);
  }

  /** Attribute with raw bytes (padded to 4). */
  add(type: number, data: Uint8Array): this {
    const total = NLA_HDRLEN + data.length;
    const next = this.len + ((total + 3) & ~3);
    if (next > this.buf.length) {
      const grown = new Uint8Array(Math.max(next, this.buf.length * 2));
      grown.set(this.buf);
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    this.view.setUint16(this.len, total, true);
    this.view.setUint16(this.len + 2, type, true);
    this.buf.set(data, this.len + NLA_HDRLEN);
    this.len = next;
    return this;
  }

  addU8(type: number, v: number): this {
    return this.add(type, Uint8Array.of(v));
  }

  addBe16(type: number, v: number): this {
    return this.add(type, Uint8Array.of((v >>> 8) & 255, v & 255));
  }

  addBe32(type: number, v: number): this {
    return this.add(type, Uint8Array.of((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255));
  }

  bytes(): Uint8Array {
    this.view.setUint32(0, this.len, true);
    return this.buf.subarray(0, this.len);
  }
}

/** One netlink message found in a chunk: its type, flags, seq and the bytes after nlmsghdr. */
export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  body: Uint8Array;
}

/**
 * Splits a chunk into netlink messages by nlmsg_len (one read can hold several). Stops at the
 * first malformed header; `bad` counts such chunks' leftovers.
 */
export function splitMessages(chunk: Uint8Array): { messages: RawMessage[]; bad: number } {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const messages: RawMessage[] = [];
  let at = 0;
  let bad = 0;
  // Each step advances by at least NLMSG_HDRLEN, so the loop is bounded by the chunk size.
  while (at + NLMSG_HDRLEN <= chunk.length) {
    const len = view.getUint32(at, true);
    if (len < NLMSG_HDRLEN || at + len > chunk.length) {
      bad++;
      break;
    }
    messages.push({
      type: view.getUint16(at + 4, true),
      flags: view.getUint16(at + 6, true),
      seq: view.getUint32(at + 8, true),
      body: chunk.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += (len + 3) & ~3;
  }
  return { messages, bad };
}

/** The errno (positive, 0 for an ACK) carried by an NLMSG_ERROR body, or null if too short. */
export function nlmsgErrno(body: Uint8Array): number | null {
  if (body.length < 4) return null;
  return 0 - new DataView(body.buffer, body.byteOffset, 4).getInt32(0, true); // 0, not -0, for an ACK
}

/** The answer to request `seq` in a chunk: 0 for an ACK, the errno of a refusal, null when absent. */
export function ackOf(chunk: Uint8Array, seq: number): number | null {
  let acked: number | null = null;
  for (const m of splitMessages(chunk).messages) {
    if (m.type === NLMSG_ERROR && m.seq === seq) acked = nlmsgErrno(m.body);
  }
  return acked;
}

/**
 * Attributes after the nfgenmsg of an nfnetlink message body, indexed by type (masked with
 * NLA_TYPE_MASK; the first occurrence wins). Returns null when an attribute header is malformed.
 */
export function nfnlAttributes(body: Uint8Array, maxType: number): (Uint8Array | undefined)[] | null {
  const out: (Uint8Array | undefined)[] = new Array(maxType + 1);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 4; // nfgenmsg
  if (body.length < at) return null;
  while (at + NLA_HDRLEN <= body.length) {
    const len = view.getUint16(at, true);
    const type = view.getUint16(at + 2, true) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || at + len > body.length) return null;
    if (type <= maxType && out[type] === undefined) out[type] = body.subarray(at + NLA_HDRLEN, at + len);
    at += (len + 3) & ~3;
  }
  return out;
}

export function be32(a: Uint8Array | undefined): number | null {
  if (!a || a.length < 4) return null;
  return ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
}

export function be16(a: Uint8Array | undefined, at = 0): number | null {
  if (!a || a.length < at + 2) return null;
  return (a[at]! << 8) | a[at + 1]!;
}

export interface ListenerStats {
  /** Packet messages delivered. */
  packets: number;
  /** Times the kernel reported ENOBUFS (or NLMSG_OVERRUN): messages were lost because the reader fell behind. */
  enobufs: number;
  /** Messages or chunks that could not be parsed (skipped). */
  decodeErrors: number;
}

/** How packet messages of one netfilter subsystem are recognised: type, attributes, header. */
export interface PacketFormat {
  type: number;
  maxAttr: number;
  headerAttr: number;
  /** Bytes the packet header attribute must have. */
  headerLen: number;
}

/** Packet messages of `format` to `onPacket` (attributes, header); anything else is a decode error. */
export function packetDecoder(
  format: PacketFormat,
  onPacket: (attrs: (Uint8Array | undefined)[], header: Uint8Array) => void,
  stats: Omit<ListenerStats, "enobufs">,
): (m: RawMessage) => void {
  return (m) => {
    const attrs = m.type === format.type ? nfnlAttributes(m.body, format.maxAttr) : null;
    const header = attrs?.[format.headerAttr];
    if (!attrs || !header || header.length < format.headerLen) {
      stats.decodeErrors++;
      return;
    }
    stats.packets++;
    onPacket(attrs, header);
  };
}

/**
 * Turns chunks into messages for `onMessage`. Control messages are handled here: ACKs and
 * NLMSG_DONE/NOOP are skipped, an NLMSG_ERROR with an errno (a refused request, e.g. a verdict
 * for an unknown id) goes to onError, NLMSG_OVERRUN counts as ENOBUFS. A throwing onMessage is
 * reported, not fatal.
 */
export function messageSplitter(onMessage: (m: RawMessage) => void, stats: ListenerStats, onError: (e: Error) => void): (chunk: Uint8Array) => void {
  return (chunk) => {
    const { messages, bad } = splitMessages(chunk);
    stats.decodeErrors += bad;
    for (const m of messages) {
      if (m.type === NLMSG_ERROR) {
        const e = nlmsgErrno(m.body);
        if (e === null) stats.decodeErrors++;
        else if (e !== 0) onError(new NetlinkError(`netlink request refused: ${errnoName(e)}`, e));
        continue;
      }
      if (m.type === NLMSG_DONE || m.type === NLMSG_NOOP) continue;
      if (m.type === NLMSG_OVERRUN) {
        stats.enobufs++;
        continue;
      }
      try {
        onMessage(m);
      } catch (err) {
        onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  };
}
