// Netlink sockets to the kernel: open and bind one in a namespace, send to the kernel, read what is
// queued without waiting, make a request and read its acknowledgement, and close one so that no
// fd of this process keeps it (or its namespace) alive. Readers are netlink-stream.ts (event loop)
// and netlink-poll.ts (a thread of its own); the wire format is netlink-codec.ts.
//
// Design facts (measured, see shared/BUN-NOTES.md): a blocking FFI recv freezes the event loop, so
// the socket is SOCK_NONBLOCK. A netlink socket belongs to the namespace it was created in: it is
// created inside `inNetns` and keeps working after the thread returns home. Errors for our own
// requests come back as NLMSG_ERROR (NETLINK_CAP_ACK set). Constants: include/uapi/linux/netlink.h,
// asm-generic/socket.h.
import { readdirSync, readlinkSync } from "node:fs";
import { closeFd } from "../sys/eventfd.ts";
import { EINTR, ENOBUFS, EPERM, errnoName } from "../sys/errno.ts";
import { errno, libc } from "../sys/libc.ts";
import { inNetns } from "../sys/netns.ts";
import { AF_NETLINK, ackOf, checkInt, NETLINK_NETFILTER, NetlinkError } from "./netlink-codec.ts";
import { MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET } from "../sys/socket-abi.ts";

const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;

/** sockaddr_nl addressed to the kernel (nl_pid 0, no groups). */
const KERNEL_ADDR = new Uint8Array(12);
new DataView(KERNEL_ADDR.buffer).setUint16(0, AF_NETLINK, true);

/** A NetlinkError for the libc call that just failed, naming errno. */
function failed(what: string): NetlinkError {
  const e = errno();
  return new NetlinkError(`${what}: ${errnoName(e)}`, e);
}

/**
 * A netlink socket of `protocol` made (and bound) in the namespace at `netns` (or the current one
 * when null), non-blocking and close-on-exec. Returns the fd and the port id the kernel assigned.
 */
export function openNetlinkSocket(netns: string | null, protocol: number): { fd: number; portId: number } {
  const make = () => {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw failed(`cannot create a netlink socket (protocol ${protocol})`);
    try {
      if (c.bind(fd, KERNEL_ADDR, KERNEL_ADDR.length) !== 0) throw failed("cannot bind the netfilter netlink socket");
      const addr = new Uint8Array(12);
      const len = new Uint32Array([12]);
      if (c.getsockname(fd, addr, len) !== 0) throw failed("getsockname on the netlink socket failed");
      // Errors for our requests come back without the whole request echoed.
      setIntOption(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      return { fd, portId: new DataView(addr.buffer).getUint32(4, true) };
    } catch (err) {
      c.close(fd);
      throw err;
    }
  };
  return netns === null ? make() : inNetns(netns, make);
}

function setIntOption(fd: number, level: number, name: number, value: number): boolean {
  return libc().setsockopt(fd, level, name, new Int32Array([value]), 4) === 0;
}

/** Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE as root, else SO_RCVBUF, capped by rmem_max). */
export function setReceiveBuffer(fd: number, bytes: number): void {
  if (!setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes)) setIntOption(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}


/** Sends one message to the kernel; returns 0 or the errno. Never blocks (netlink to the kernel is synchronous). */
export function sendRaw(fd: number, msg: Uint8Array): number {
  const n = Number(libc().sendto(fd, msg, msg.length, 0, KERNEL_ADDR, KERNEL_ADDR.length));
  return n < 0 ? errno() : 0;
}

/** Reads one message batch into `buf` without waiting: the byte count, or the errno negated (-EAGAIN: nothing queued). */
export function recvNow(fd: number, buf: Uint8Array): number {
  const n = Number(libc().recv(fd, buf, buf.length, MSG_DONTWAIT));
  return n < 0 ? -errno() : n;
}

/** What /proc/self/fd/FD links to ("socket:[INODE]"), or null. */
export function fdLink(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

function fdsLinkingTo(link: string): number {
  let n = 0;
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === link) n++;
    } catch {}
  }
  return n;
}

/**
 * Closes our fd, then waits (at most timeoutMs) until no fd of this process refers to the same
 * socket. Needed because Bun.file(fd).stream() reads from its own dup of the fd (close-on-exec)
 * and closes that dup a tick or more after reader.cancel(); until then the socket, its NFLOG
 * group or queue binding, and the namespace it lives in stay alive. Returns false on timeout.
 */
export async function closeAndRelease(fd: number, link: string | null, timeoutMs = 2000): Promise<boolean> {
  closeFd(fd);
  if (link === null) return true;
  const end = performance.now() + timeoutMs;
  for (let wait = 0; ; wait = Math.min(wait + 1, 20)) {
    if (fdsLinkingTo(link) === 0) return true;
    if (performance.now() > end) return false;
    await Bun.sleep(wait);
  }
}

/**
 * Sends a request with NLM_F_ACK and reads its acknowledgement at once: the kernel handles a
 * netlink request inside sendto(), so the ACK is already queued when sendto returns. Other
 * messages read on the way (packets that raced in) are returned so the caller can deliver them.
 * Throws NetlinkError naming `what` when the kernel refuses.
 */
export function request(fd: number, msg: Uint8Array, seq: number, what: string): Uint8Array[] {
  const sendErr = sendRaw(fd, msg);
  if (sendErr !== 0) throw new NetlinkError(`${what}: sendto failed: ${errnoName(sendErr)}`, sendErr);
  const early: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  // Bounded: the ACK is queued already; allow for packets ahead of it and for EINTR.
  for (let tries = 0; tries < 256; tries++) {
    const n = recvNow(fd, buf);
    if (n === -EINTR || n === -ENOBUFS) continue;
    if (n < 0) throw new NetlinkError(`${what}: no acknowledgement from the kernel (${errnoName(-n)})`, -n);
    const chunk = buf.slice(0, n);
    // Anything else in the same chunk besides our ACK is kept too; the splitter skips the ACK.
    early.push(chunk);
    const acked = ackOf(chunk, seq);
    if (acked === null) continue;
    if (acked !== 0) throw new NetlinkError(`${what}: ${errnoName(acked)}`, acked);
    return early;
  }
  throw new NetlinkError(`${what}: no acknowledgement from the kernel`, 0);
}

/**
 * request() for binding an NFLOG group or NFQUEUE queue (`what` names it, `noun` says which). The
 * kernel answers EPERM when another socket holds it (EBUSY only when this socket binds it twice);
 * EPERM also means no CAP_NET_ADMIN over the namespace, and the error says both.
 */
export function requestBind(fd: number, msg: Uint8Array, what: string, noun: "group" | "queue"): Uint8Array[] {
  try {
    return request(fd, msg, 1, what);
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === EPERM) {
      throw new NetlinkError(`${e.message}: the ${noun} is bound by another socket, or this process lacks CAP_NET_ADMIN there`, e.errno);
    }
    throw e;
  }
}

/** NFULNL_COPY_RANGE_MAX and NFQNL_MAX_COPY_RANGE: 0xffff - NLA_HDRLEN. */
export const MAX_COPY_RANGE = 0xffff - 4;
const DEFAULT_COPY_RANGE = 512;
const DEFAULT_RECV_BUFFER = 1 << 20;

/** What binding an NFLOG group or an NFQUEUE queue needs besides its number. */
export interface NetfilterSocketOptions {
  /** Namespace path such as /run/netns/NAME, or null for the current network namespace. */
  netns: string | null;
  /** Bytes of each packet to copy, 1..65531; default 512. */
  copyRange?: number;
  /** Socket receive buffer in bytes (default 1 MiB); smaller means earlier ENOBUFS. */
  recvBufferBytes?: number;
}

/** The copy range `opts` asks for (checked), and the namespace in words for messages. */
export function bindingOf(opts: NetfilterSocketOptions): { copyRange: number; where: string } {
  const copyRange = opts.copyRange ?? DEFAULT_COPY_RANGE;
  checkInt("copyRange", copyRange, 1, MAX_COPY_RANGE);
  return { copyRange, where: opts.netns ?? "the current network namespace" };
}

/**
 * A netfilter socket in `opts.netns` with the receive buffer it asks for, configured by
 * `configure` (its requests; it returns what they read on the way). Closed again if that throws.
 */
export function openConfigured(opts: NetfilterSocketOptions, configure: (fd: number) => Uint8Array[]): { fd: number; early: Uint8Array[] } {
  const { fd } = openNetlinkSocket(opts.netns, NETLINK_NETFILTER);
  try {
    setReceiveBuffer(fd, opts.recvBufferBytes ?? DEFAULT_RECV_BUFFER);
    return { fd, early: configure(fd) };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}
