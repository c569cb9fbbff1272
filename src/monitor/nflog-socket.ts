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
import {
  be16,
  be32,
  checkInt,
  NfnlMessage,
  NFNL_SUBSYS_ULOG,
  NLM_F_ACK,
  NLM_F_REQUEST,
  openConfigured,
  request,
  requestBind,
  listenForPackets,
  type PacketFormat,
} from "./netlink.ts";

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
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const NFULA_UID = 11;
const NFULA_GID = 14;
const NFULA_MAX_USED = NFULA_GID;
/** NFULNL_COPY_RANGE_MAX: 0xffff - NLA_HDRLEN. */
export const MAX_COPY_RANGE = 0xffff - 4;
const DEFAULT_RECV_BUFFER = 1 << 20;

export interface NflogPacket {
  /** The rule's log prefix (empty when it has none). */
  prefix: string;
  /** fsuid/fsgid of the sending socket's file, when the packet has one (locally sent TCP/UDP does). */
  uid: number | null;
  gid: number | null;
  /** The IP packet from the network header, cut to copyRange bytes. Feed it to decodePacket(). */
  payload: Uint8Array;
  /** Ethertype of the packet: 0x0800 IPv4, 0x86dd IPv6. */
  hwProtocol: number;
  /** Netfilter hook: 0 PRE_ROUTING, 1 LOCAL_IN, 2 FORWARD, 3 LOCAL_OUT, 4 POST_ROUTING. */
  hook: number;
}

export interface NflogStats {
  /** Packet messages delivered to onPacket. */
  packets: number;
  /** Times the kernel reported ENOBUFS: messages were lost because the reader fell behind. */
  enobufs: number;
  /** Messages or chunks that could not be parsed (skipped). */
  decodeErrors: number;
}

export interface NflogHandle {
  readonly stats: NflogStats;
  /**
   * Stops reading and closes the socket; resolves once no fd of this process refers to it any
   * more, so the group is free and nothing here keeps the namespace alive. Idempotent.
   */
  close(): Promise<void>;
}

export interface NflogOptions {
  /** Namespace path such as /run/netns/NAME, or null for the current network namespace. */
  netns: string | null;
  /** NFLOG group, 0..65535: the `group` of the log rule. */
  group: number;
  /** Bytes of each packet to copy, 1..65531; default 512. */
  copyRange?: number;
  /** Socket receive buffer in bytes (default 1 MiB); smaller means earlier ENOBUFS. */
  recvBufferBytes?: number;
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
export type NflogBinding = Omit<NflogOptions, "onPacket" | "onError">;

/**
 * Binds NFLOG group `group` in the namespace and configures it (copy mode packet with copyRange,
 * queue threshold 1 so each packet is sent at once), synchronously. Returns the non-blocking fd
 * and whatever was read while configuring (`early`), for a reader to start with.
 * Throws NetlinkError (with .errno) when the socket cannot be made or the group cannot be bound:
 * EPERM when another socket already holds the group in that namespace.
 */
export function bindNflog(opts: NflogBinding): { fd: number; early: Uint8Array[] } {
  const copyRange = opts.copyRange ?? 512;
  checkInt("group", opts.group, 0, 0xffff);
  checkInt("copyRange", copyRange, 1, MAX_COPY_RANGE);
  const where = opts.netns ?? "the current network namespace";

  return openConfigured(opts.netns, opts.recvBufferBytes ?? DEFAULT_RECV_BUFFER, (fd) => {
    const type = NFULNL_MSG_CONFIG;
    const flags = NLM_F_REQUEST | NLM_F_ACK;
    const bind = new NfnlMessage(NFNL_SUBSYS_ULOG, type, flags, 1, opts.group).addU8(NFULA_CFG_CMD, NFULNL_CFG_CMD_BIND);
    const early = requestBind(fd, bind.bytes(), `NFLOG group ${opts.group} in ${where}`, "group");
    const mode = new Uint8Array(6); // struct nfulnl_msg_config_mode (packed): be32 copy_range, u8 mode, u8 pad
    new DataView(mode.buffer).setUint32(0, copyRange, false);
    mode[4] = NFULNL_COPY_PACKET;
    const config = new NfnlMessage(NFNL_SUBSYS_ULOG, type, flags, 2, opts.group)
      .add(NFULA_CFG_MODE, mode)
      .addBe32(NFULA_CFG_QTHRESH, 1);
    early.push(...request(fd, config.bytes(), 2, `configuring NFLOG group ${opts.group} in ${where}`));
    return early;
  });
}

export const NFLOG_FORMAT: PacketFormat = { type: (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET, maxAttr: NFULA_MAX_USED, headerAttr: NFULA_PACKET_HDR, headerLen: 3 };

/** One packet message's attributes and header (struct nfulnl_msg_packet_hdr: be16 hw_protocol, u8 hook). */
export function nflogPacket(attrs: (Uint8Array | undefined)[], hdr: Uint8Array): NflogPacket {
  return {
    prefix: cString(attrs[NFULA_PREFIX]),
    uid: be32(attrs[NFULA_UID]),
    gid: be32(attrs[NFULA_GID]),
    payload: (attrs[NFULA_PAYLOAD] ?? new Uint8Array(0)).slice(),
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
