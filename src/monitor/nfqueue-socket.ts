// NFQUEUE (nfnetlink_queue) listener. A queued packet waits in the kernel until userspace gives a
// verdict, so the socket that sent it still exists (a TCP SYN's socket stays in SYN_SENT) while
// proxywall looks up its owner in /proc. The verdict `repeatWithMark` re-runs the hook's chain
// with the packet mark set (NF_REPEAT + NFQA_MARK), where a rule matching that mark logs/rejects.
// With nft `queue num N bypass` (iptables `--queue-bypass`) packets skip the queue rule while no
// socket is bound to the queue, so the rule after it must be the reject.
//
// Kernel ABI (include/uapi/linux/netfilter/nfnetlink_queue.h, net/netfilter/nfnetlink_queue.c,
// include/uapi/linux/netfilter.h): config is NFNL_SUBSYS_QUEUE<<8 | NFQNL_MSG_CONFIG with
// res_id = queue; NFQNL_CFG_CMD_PF_BIND/PF_UNBIND are ignored by the kernel ("obsolete") and not
// sent. Packets arrive as 0x0300; verdicts are NFQNL_MSG_VERDICT with NFQA_VERDICT_HDR.
import { EOPNOTSUPP, errnoName } from "../sys/errno.ts";
import { be16, be32, checkInt, NetlinkError, NfnlMessage, NFNL_SUBSYS_QUEUE, NLM_F_ACK, NLM_F_REQUEST, type PacketFormat } from "./netlink-codec.ts";
import { bindingOf, openConfigured, request, requestBind, sendRaw, type NetfilterSocketOptions } from "./netlink-socket.ts";
import { listenForPackets, type PacketListener } from "./netlink-stream.ts";

const NFQNL_MSG_PACKET = 0;
const NFQNL_MSG_VERDICT = 1;
const NFQNL_MSG_CONFIG = 2;
// enum nfqnl_attr_config
const NFQA_CFG_CMD = 1;
const NFQA_CFG_PARAMS = 2;
const NFQA_CFG_QUEUE_MAXLEN = 3;
const NFQA_CFG_MASK = 4;
const NFQA_CFG_FLAGS = 5;
const NFQNL_CFG_CMD_BIND = 1;
const NFQNL_COPY_PACKET = 2;
const NFQA_CFG_F_FAIL_OPEN = 1 << 0;
const NFQA_CFG_F_UID_GID = 1 << 3;
// enum nfqnl_attr_type
const NFQA_PACKET_HDR = 1;
const NFQA_VERDICT_HDR = 2;
const NFQA_MARK = 3;
const NFQA_IFINDEX_OUTDEV = 6;
const NFQA_PAYLOAD = 10;
const NFQA_UID = 16;
const NFQA_GID = 17;
const NFQA_MAX_USED = NFQA_GID;
// include/uapi/linux/netfilter.h
const NF_DROP = 0;
const NF_ACCEPT = 1;
const NF_REPEAT = 4;
const DEFAULT_MAX_LEN = 1024;

export type Verdict = "accept" | "drop" | { repeatWithMark: number };

export interface QueuedPacket {
  /** Kernel packet id within this queue. */
  id: number;
  /** The IP packet from the network header, cut to copyRange bytes. Feed it to decodePacket(). */
  payload: Uint8Array;
  /** fsuid/fsgid of the sending socket's file (NFQA_CFG_F_UID_GID), when the packet has one. */
  uid: number | null;
  gid: number | null;
  /** The interface it was leaving by (NFQA_IFINDEX_OUTDEV), when the hook had one. */
  outIfindex: number | null;
  /** Ethertype: 0x0800 IPv4, 0x86dd IPv6. */
  hwProtocol: number;
  /** Netfilter hook: 3 LOCAL_OUT for the sandbox's own connections. */
  hook: number;
  /**
   * Releases the packet: "accept" lets it continue after the queue rule, "drop" discards it,
   * { repeatWithMark } sets the packet mark (u32) and re-runs the chain from its start.
   * Give exactly one verdict per packet (later calls are ignored); an unanswered packet stays in
   * the kernel (and keeps its sender waiting) until the handle is closed, which drops it.
   * Never throws: a failed send is reported to onError.
   */
  verdict(v: Verdict): void;
}

export type NfqueueHandle = PacketListener;

export interface NfqueueOptions extends NetfilterSocketOptions {
  /** Queue number, 0..65535: the `queue num` of the rule. */
  queue: number;
  /** Most packets waiting for a verdict before the kernel drops new ones (default 1024). */
  maxLen?: number;
  /** Called on the event loop once per queued packet, never inside openNfqueue(). */
  onPacket: (p: QueuedPacket) => void;
  /** Read failures, refused requests (e.g. a verdict for an unknown id), onPacket exceptions. */
  onError?: (e: Error) => void;
}

/** What binding a queue needs: everything in NfqueueOptions but the callbacks. */
export type NfqueueBinding = Omit<NfqueueOptions, "onPacket" | "onError">;

/**
 * Binds queue `queue` in the namespace and configures it, synchronously: copy mode packet with
 * copyRange, queue max length, uid/gid requested (NFQA_CFG_F_UID_GID) and fail-open off (a full
 * queue drops rather than lets packets through). Returns the non-blocking fd and whatever was
 * read while configuring. Throws NetlinkError when the queue cannot be bound: EPERM when another
 * socket holds it.
 */
export function bindNfqueue(opts: NfqueueBinding): { fd: number; early: Uint8Array[] } {
  const maxLen = opts.maxLen ?? DEFAULT_MAX_LEN;
  checkInt("queue", opts.queue, 0, 0xffff);
  const { copyRange, where } = bindingOf(opts);
  checkInt("maxLen", maxLen, 1, 0xffffffff);
  const queue = opts.queue;
  return openConfigured(opts, (fd) => {
    const early = requestBind(fd, nfqueueBindRequest(queue), `NFQUEUE queue ${queue} in ${where}`, "queue");
    const what = `configuring NFQUEUE queue ${queue} in ${where}`;
    try {
      early.push(...request(fd, nfqueueConfigRequest(queue, 2, copyRange, maxLen, true), 2, what));
    } catch (e) {
      // Kernels before 4.0 lack NFQA_CFG_F_UID_GID: carry on without uid/gid.
      if (!(e instanceof NetlinkError && e.errno === EOPNOTSUPP)) throw e;
      early.push(...request(fd, nfqueueConfigRequest(queue, 3, copyRange, maxLen, false), 3, what));
    }
    return early;
  });
}

const CONFIG_FLAGS = NLM_F_REQUEST | NLM_F_ACK;

/** Binding queue `queue` to the socket (seq 1). */
export function nfqueueBindRequest(queue: number): Uint8Array {
  // struct nfqnl_msg_config_cmd: u8 command, u8 pad, be16 pf (pf only for the obsolete PF_BIND)
  return new NfnlMessage(NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG, CONFIG_FLAGS, 1, queue).add(NFQA_CFG_CMD, Uint8Array.of(NFQNL_CFG_CMD_BIND, 0, 0, 0)).bytes();
}

/** Copy mode packet with `copyRange`, queue max length, fail-open off, uid/gid asked for when `uidGid`. */
export function nfqueueConfigRequest(queue: number, seq: number, copyRange: number, maxLen: number, uidGid: boolean): Uint8Array {
  const params = new Uint8Array(5); // struct nfqnl_msg_config_params (packed): be32 copy_range, u8 mode
  new DataView(params.buffer).setUint32(0, copyRange, false);
  params[4] = NFQNL_COPY_PACKET;
  return new NfnlMessage(NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG, CONFIG_FLAGS, seq, queue)
    .add(NFQA_CFG_PARAMS, params)
    .addBe32(NFQA_CFG_QUEUE_MAXLEN, maxLen)
    .addBe32(NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN | (uidGid ? NFQA_CFG_F_UID_GID : 0))
    .addBe32(NFQA_CFG_FLAGS, uidGid ? NFQA_CFG_F_UID_GID : 0)
    .bytes();
}

/** The verdict `v` for packet `id`, or null when `v` is not a valid verdict. */
export function nfqueueVerdictRequest(queue: number, seq: number, id: number, v: Verdict): Uint8Array | null {
  const hdr = new Uint8Array(8); // struct nfqnl_msg_verdict_hdr: be32 verdict, be32 id
  const view = new DataView(hdr.buffer);
  view.setUint32(4, id, false);
  const msg = new NfnlMessage(NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT, NLM_F_REQUEST, seq, queue);
  if (v === "accept" || v === "drop") {
    view.setUint32(0, v === "accept" ? NF_ACCEPT : NF_DROP, false);
    return msg.add(NFQA_VERDICT_HDR, hdr).bytes();
  }
  if (typeof v === "object" && v !== null && Number.isInteger(v.repeatWithMark) && v.repeatWithMark >= 0 && v.repeatWithMark <= 0xffffffff) {
    view.setUint32(0, NF_REPEAT, false);
    return msg.add(NFQA_VERDICT_HDR, hdr).addBe32(NFQA_MARK, v.repeatWithMark).bytes();
  }
  return null;
}

export const NFQUEUE_FORMAT: PacketFormat = { type: (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET, maxAttr: NFQA_MAX_USED, headerAttr: NFQA_PACKET_HDR, headerLen: 7 };

/**
 * Turns the packet messages of queue `queue` (read from `fd`) into QueuedPackets whose verdict()
 * answers on `fd`, for `onPacket`. Verdicts are ignored once `closed()` says so.
 */
export function queuedPackets(
  fd: number,
  queue: number,
  onPacket: (p: QueuedPacket) => void,
  onError: (e: Error) => void,
  closed: () => boolean,
): (attrs: (Uint8Array | undefined)[], hdr: Uint8Array) => void {
  let seq = 100;
  const sendVerdict = (id: number, v: Verdict) => {
    const msg = nfqueueVerdictRequest(queue, ++seq, id, v);
    if (!msg) {
      onError(new RangeError(`invalid verdict for packet ${id}: ${JSON.stringify(v)}`));
      return false;
    }
    const err = sendRaw(fd, msg);
    if (err !== 0) onError(new NetlinkError(`verdict for packet ${id} on queue ${queue}: ${errnoName(err)}`, err));
    return true;
  };
  // struct nfqnl_msg_packet_hdr (packed): be32 packet_id, be16 hw_protocol, u8 hook
  return (attrs, hdr) => {
    const id = be32(hdr)!;
    let answered = false;
    onPacket({
      id,
      payload: (attrs[NFQA_PAYLOAD] ?? new Uint8Array(0)).slice(),
      outIfindex: be32(attrs[NFQA_IFINDEX_OUTDEV]),
      uid: be32(attrs[NFQA_UID]),
      gid: be32(attrs[NFQA_GID]),
      hwProtocol: be16(hdr, 4)!,
      hook: hdr[6]!,
      verdict(v) {
        if (answered || closed()) return;
        if (sendVerdict(id, v)) answered = true;
      },
    });
  };
}

/** Binds the queue (bindNfqueue) and delivers its packets on the event loop, never inside openNfqueue(). */
export function openNfqueue(opts: NfqueueOptions): NfqueueHandle {
  const { fd, early } = bindNfqueue(opts);
  const onError = opts.onError ?? (() => {});
  let closed = false;
  return listenForPackets(fd, early, NFQUEUE_FORMAT, queuedPackets(fd, opts.queue, opts.onPacket, onError, () => closed), onError, `NFQUEUE queue ${opts.queue}`, () => (closed = true));
}
