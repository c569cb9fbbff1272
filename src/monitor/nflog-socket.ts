// NFLOG (nfnetlink_log) listener: receives the packets that `log group N` (nft) or
// `-j NFLOG --nflog-group N` (iptables) rules copy to userspace in a network namespace. Unlike the
// printk LOG target it works in any namespace without a host sysctl and needs only CAP_NET_ADMIN
// over the namespace (shared/KERNEL-NOTES.md).
//
// Kernel ABI (include/uapi/linux/netfilter/nfnetlink_log.h, net/netfilter/nfnetlink_log.c):
// config messages are NFNL_SUBSYS_ULOG<<8 | NFULNL_MSG_CONFIG with res_id = group; packets arrive
// as NFNL_SUBSYS_ULOG<<8 | NFULNL_MSG_PACKET (0x0400). NFULA_UID/NFULA_GID need no flag: the
// kernel adds them whenever the packet has a full socket with an open file (there is no
// NFULNL_CFG_F_UID; the flags are SEQ, SEQ_GLOBAL and CONNTRACK only).
import { be16, be32, checkInt, NfnlMessage, NFNL_SUBSYS_ULOG, NLM_F_ACK, NLM_F_REQUEST, type PacketFormat } from "./netlink-codec.ts";
import { bindingOf, openConfigured, request, requestBind, type NetfilterSocketOptions } from "./netlink-socket.ts";
import { listenForPackets, type PacketListener } from "./netlink-stream.ts";

const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
// enum nfulnl_attr_config
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_QTHRESH = 5;
// enum nfulnl_msg_config_cmds
const NFULNL_CFG_CMD_BIND = 1;
const NFULNL_COPY_PACKET = 2;
// enum nfulnl_attr_type
const NFULA_PACKET_HDR = 1;
const NFULA_IFINDEX_OUTDEV = 5;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const NFULA_UID = 11;
const NFULA_GID = 14;
const NFULA_MAX_USED = NFULA_GID;

export interface NflogPacket {
  /** The rule's log prefix (empty when it has none). */
  prefix: string;
  /** fsuid/fsgid of the sending socket's file, when the packet has one (locally sent TCP/UDP does). */
  uid: number | null;
  gid: number | null;
  /** The IP packet from the network header, cut to copyRange bytes. Feed it to decodePacket(). */
  payload: Uint8Array;
  /** The interface it was leaving by (NFULA_IFINDEX_OUTDEV), when the hook had one. */
  outIfindex: number | null;
  /** Ethertype of the packet: 0x0800 IPv4, 0x86dd IPv6. */
  hwProtocol: number;
  /** Netfilter hook: 0 PRE_ROUTING, 1 LOCAL_IN, 2 FORWARD, 3 LOCAL_OUT, 4 POST_ROUTING. */
  hook: number;
}

export type NflogHandle = PacketListener;

export interface NflogOptions extends NetfilterSocketOptions {
  /** NFLOG group, 0..65535: the `group` of the log rule. */
  group: number;
  /** Called on the event loop, once per logged packet, never inside openNflog(). */
  onPacket: (p: NflogPacket) => void;
  /** Read failures, refused requests and exceptions thrown by onPacket. Default: ignored. */
  onError?: (e: Error) => void;
}

const decoder = new TextDecoder();

function cString(a: Uint8Array | undefined): string {
  if (!a) return "";
  const nul = a.indexOf(0);
  return decoder.decode(nul === -1 ? a : a.subarray(0, nul));
}

/** What binding a group needs: everything in NflogOptions but the callbacks. */
export type NflogBinding = NetfilterSocketOptions & { group: number };

/**
 * Binds NFLOG group `group` in the namespace and configures it (copy mode packet with copyRange,
 * queue threshold 1 so each packet is sent at once), synchronously. Returns the non-blocking fd
 * and whatever was read while configuring (`early`), for a reader to start with.
 * Throws NetlinkError (with .errno) when the socket cannot be made or the group cannot be bound:
 * EPERM when another socket already holds the group in that namespace.
 */
export function bindNflog(opts: NflogBinding): { fd: number; early: Uint8Array[] } {
  checkInt("group", opts.group, 0, 0xffff);
  const { copyRange, where } = bindingOf(opts);
  return openConfigured(opts, (fd) => {
    const early = requestBind(fd, nflogBindRequest(opts.group), `NFLOG group ${opts.group} in ${where}`, "group");
    early.push(...request(fd, nflogConfigRequest(opts.group, copyRange), 2, `configuring NFLOG group ${opts.group} in ${where}`));
    return early;
  });
}

const CONFIG_FLAGS = NLM_F_REQUEST | NLM_F_ACK;

/** Binding group `group` to the socket (seq 1). */
export function nflogBindRequest(group: number): Uint8Array {
  return new NfnlMessage(NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG, CONFIG_FLAGS, 1, group).addU8(NFULA_CFG_CMD, NFULNL_CFG_CMD_BIND).bytes();
}

/** Copy mode packet with `copyRange` bytes, queue threshold 1: each packet is sent at once (seq 2). */
export function nflogConfigRequest(group: number, copyRange: number): Uint8Array {
  const mode = new Uint8Array(6); // struct nfulnl_msg_config_mode (packed): be32 copy_range, u8 mode, u8 pad
  new DataView(mode.buffer).setUint32(0, copyRange, false);
  mode[4] = NFULNL_COPY_PACKET;
  return new NfnlMessage(NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG, CONFIG_FLAGS, 2, group).add(NFULA_CFG_MODE, mode).addBe32(NFULA_CFG_QTHRESH, 1).bytes();
}

export const NFLOG_FORMAT: PacketFormat = { type: (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET, maxAttr: NFULA_MAX_USED, headerAttr: NFULA_PACKET_HDR, headerLen: 3 };

/** One packet message's attributes and header (struct nfulnl_msg_packet_hdr: be16 hw_protocol, u8 hook). */
export function nflogPacket(attrs: (Uint8Array | undefined)[], hdr: Uint8Array): NflogPacket {
  return {
    prefix: cString(attrs[NFULA_PREFIX]),
    uid: be32(attrs[NFULA_UID]),
    gid: be32(attrs[NFULA_GID]),
    payload: (attrs[NFULA_PAYLOAD] ?? new Uint8Array(0)).slice(),
    outIfindex: be32(attrs[NFULA_IFINDEX_OUTDEV]),
    hwProtocol: be16(hdr)!,
    hook: hdr[2]!,
  };
}

/**
 * Binds the group (bindNflog) and delivers its packets to `onPacket` on the event loop, never
 * inside openNflog().
 */
export function openNflog(opts: NflogOptions): NflogHandle {
  const { fd, early } = bindNflog(opts);
  return listenForPackets(fd, early, NFLOG_FORMAT, (attrs, hdr) => opts.onPacket(nflogPacket(attrs, hdr)), opts.onError ?? (() => {}), `NFLOG group ${opts.group}`);
}
