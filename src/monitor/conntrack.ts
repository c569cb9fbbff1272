// The destination a program asked for before the sandbox's nat rule changed it: the conntrack
// entry of the redirect knows it. One exact ctnetlink lookup (IPCTNL_MSG_CT_GET by the reply
// tuple, which is what proxywall's DNS responder sees: from itself to the client), answered inside
// sendto(), like sock_diag's.
//
// ABI (include/uapi/linux/netfilter/nfnetlink_conntrack.h): request NFNL_SUBSYS_CTNETLINK<<8 |
// IPCTNL_MSG_CT_GET, nfgenmsg family AF_INET/AF_INET6, attribute CTA_TUPLE_REPLY { CTA_TUPLE_IP
// { CTA_IP_V4_SRC/DST or CTA_IP_V6_SRC/DST }, CTA_TUPLE_PROTO { CTA_PROTO_NUM, CTA_PROTO_SRC_PORT,
// CTA_PROTO_DST_PORT } }; the answer carries CTA_TUPLE_ORIG in the same shape, or NLMSG_ERROR
// -ENOENT.
import { ipv4ToInt, ipv6Groups, formatIPv6 } from "../net/ip-address.ts";
import { EINTR, errnoName } from "../sys/errno.ts";
import { be16, NETLINK_NETFILTER, NfnlMessage, NLM_F_REQUEST, NLMSG_ERROR, nfnlAttributes, nlmsgErrno, splitMessages } from "./netlink-codec.ts";
import { closeFd } from "../sys/eventfd.ts";
import { openNetlinkSocket, recvNow, sendRaw } from "./netlink-socket.ts";
import { AF_INET, AF_INET6 } from "../sys/socket-abi.ts";

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const NLA_F_NESTED = 0x8000;

export interface Endpoint {
  addr: string;
  port: number;
}

/** One netlink attribute: header and data, padded to 4 bytes. */
function nla(type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array((4 + data.length + 3) & ~3);
  new DataView(out.buffer).setUint16(0, 4 + data.length, true);
  new DataView(out.buffer).setUint16(2, type, true);
  out.set(data, 4);
  return out;
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};

function addrBytes(a: string, v6: boolean): Uint8Array {
  if (!v6) {
    const n = ipv4ToInt(a);
    return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
  }
  return Uint8Array.from(ipv6Groups(a)!.flatMap((g) => [g >> 8, g & 255]));
}

/** The CT_GET request for the UDP entry whose reply goes from `from` to `to`. */
export function conntrackRequest(seq: number, family: "ipv4" | "ipv6", from: Endpoint, to: Endpoint): Uint8Array {
  const v6 = family === "ipv6";
  const ip = concat([nla(v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, addrBytes(from.addr, v6)), nla(v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, addrBytes(to.addr, v6))]);
  const port = (p: number) => Uint8Array.of(p >> 8, p & 255);
  const proto = concat([nla(CTA_PROTO_NUM, Uint8Array.of(17)), nla(CTA_PROTO_SRC_PORT, port(from.port)), nla(CTA_PROTO_DST_PORT, port(to.port))]);
  const tuple = concat([nla(CTA_TUPLE_IP | NLA_F_NESTED, ip), nla(CTA_TUPLE_PROTO | NLA_F_NESTED, proto)]);
  return new NfnlMessage(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_REQUEST, seq, 0, v6 ? AF_INET6 : AF_INET).add(CTA_TUPLE_REPLY | NLA_F_NESTED, tuple).bytes();
}

/** Nested attributes of one attribute's data, by type. */
function nested(data: Uint8Array | undefined, max: number): (Uint8Array | undefined)[] | null {
  if (!data) return null;
  // nfnlAttributes skips a 4-byte nfgenmsg first: give it 4 bytes of nothing.
  const padded = new Uint8Array(4 + data.length);
  padded.set(data, 4);
  return nfnlAttributes(padded, max);
}

/** The original destination in an answer to `seq`; null for none, "other" for another message. */
export function conntrackReply(chunk: Uint8Array, seq: number): Endpoint | null | "other" {
  for (const m of splitMessages(chunk).messages) {
    if (m.seq !== seq) continue;
    if (m.type === NLMSG_ERROR) return nlmsgErrno(m.body) === 0 ? "other" : null;
    const tuple = nested(nfnlAttributes(m.body, CTA_TUPLE_REPLY)?.[CTA_TUPLE_ORIG], CTA_TUPLE_PROTO);
    const ip = nested(tuple?.[CTA_TUPLE_IP], CTA_IP_V6_DST);
    const proto = nested(tuple?.[CTA_TUPLE_PROTO], CTA_PROTO_DST_PORT);
    const port = be16(proto?.[CTA_PROTO_DST_PORT]);
    const v4 = ip?.[CTA_IP_V4_DST];
    const v6 = ip?.[CTA_IP_V6_DST];
    if (port === null) return null;
    if (v4 && v4.length === 4) return { addr: `${v4[0]}.${v4[1]}.${v4[2]}.${v4[3]}`, port };
    if (v6 && v6.length === 16) return { addr: formatIPv6(Array.from({ length: 8 }, (_, i) => (v6[2 * i]! << 8) | v6[2 * i + 1]!)), port };
    return null;
  }
  return "other";
}

export class Conntrack {
  private readonly fd: number;
  private readonly reply = new Uint8Array(4096);
  private seq = 1;

  constructor(nsPath: string) {
    this.fd = openNetlinkSocket(nsPath, NETLINK_NETFILTER).fd;
  }

  /** Where the UDP datagram that the reply `from` -> `to` answers was first sent; an error text when unknown. */
  originalDestination(family: "ipv4" | "ipv6", from: Endpoint, to: Endpoint): Endpoint | { error: string } {
    const seq = this.seq++;
    const err = sendRaw(this.fd, conntrackRequest(seq, family, from, to));
    if (err !== 0) return { error: `conntrack request failed: ${errnoName(err)}` };
    for (let tries = 0; tries < 8; tries++) {
      const n = recvNow(this.fd, this.reply);
      if (n === -EINTR) continue;
      if (n < 0) return { error: `conntrack reply: ${errnoName(-n)}` };
      const found = conntrackReply(this.reply.subarray(0, n), seq);
      if (found === null) return { error: "no conntrack entry" };
      if (found !== "other") return found;
    }
    return { error: "conntrack gave no reply" };
  }

  close(): void {
    closeFd(this.fd);
  }
}
