// The netfilter netlink socket (NETLINK_NETFILTER) shared by nflog-socket.ts and nfqueue-socket.ts:
// libc through bun:ffi, message building and walking, the synchronous configure-and-ack step, and
// two readers: one on the event loop, one that blocks a thread of its own (readUntilWoken).
//
// Constants are from the kernel UAPI headers (include/uapi/linux/netlink.h, netfilter/nfnetlink.h,
// asm-generic/socket.h, asm-generic/errno*.h), the same on x86_64 and arm64.
//
// Design facts (measured, see shared/BUN-NOTES.md): a blocking FFI recv freezes the event loop, so
// the socket is SOCK_NONBLOCK. On the event loop it is read with `Bun.file(fd).stream()` (Bun polls
// the fd with epoll); Bun reads from its own close-on-exec dup of the fd and closes that dup a tick
// or more after the reader is cancelled: closeAndRelease() waits for it. `proxywall run` reads on
// a Worker's thread instead, with poll(2), which wakes within about 0.15 ms of a packet (the
// event loop: 0.3-0.8 ms, more when busy). A netlink socket belongs to the namespace it was
// created in: it is created inside `inNetns` and keeps working after the thread returns home.
// Errors for our own requests come back as NLMSG_ERROR (NETLINK_CAP_ACK set).
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { readdirSync, readlinkSync } from "node:fs";
import { inNetns } from "../sys/netns.ts";

export const AF_NETLINK = 16;
export const AF_UNSPEC = 0;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_NETFILTER = 12;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
export const MSG_DONTWAIT = 0x40;

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

export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
  16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 24: "EMFILE", 34: "ERANGE", 93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 105: "ENOBUFS", 111: "ECONNREFUSED", 524: "ENOTSUPP",
};

export function errnoName(n: number): string {
  return ERRNO_NAMES[n] ?? `errno ${n}`;
}

/** An Error that carries the errno (positive) of the failed call or netlink request. */
export class NetlinkError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
    this.name = "NetlinkError";
  }
}

// Only portable symbols plus __errno_location, which glibc and musl both export. On musl the
// dynamic loader maps the name "libc.so.6" to musl itself (shared/BUN-NOTES.md).
function load() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}
let lib: ReturnType<typeof load> | null = null;
export function libc() {
  return (lib ??= load());
}

export function errno(): number {
  const p = libc().symbols.__errno_location() as Pointer | null;
  return p ? read.i32(p, 0) : 0;
}

/** sockaddr_nl addressed to the kernel (nl_pid 0, no groups). */
const KERNEL_ADDR = new Uint8Array(12);
new DataView(KERNEL_ADDR.buffer).setUint16(0, AF_NETLINK, true);

/**
 * A NETLINK_NETFILTER socket created (and bound) in the namespace at `netns` (or the current one
 * when null), non-blocking and close-on-exec. Returns the fd and the port id the kernel assigned.
 */
export function openNetfilterSocket(netns: string | null): { fd: number; portId: number } {
  return openNetlinkSocket(netns, NETLINK_NETFILTER);
}

/** A netlink socket of `protocol` made (and bound) in the namespace at `netns`; as above. */
export function openNetlinkSocket(netns: string | null, protocol: number): { fd: number; portId: number } {
  const make = () => {
    const c = libc().symbols;
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      const e = errno();
      throw new NetlinkError(`cannot create a netlink socket (protocol ${protocol}): ${errnoName(e)}`, e);
    }
    try {
      if (c.bind(fd, KERNEL_ADDR, KERNEL_ADDR.length) !== 0) {
        const e = errno();
        throw new NetlinkError(`cannot bind the netfilter netlink socket: ${errnoName(e)}`, e);
      }
      const addr = new Uint8Array(12);
      const len = new Uint32Array([12]);
      if (c.getsockname(fd, addr, len) !== 0) {
        const e = errno();
        throw new NetlinkError(`getsockname on the netlink socket failed: ${errnoName(e)}`, e);
      }
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
  return libc().symbols.setsockopt(fd, level, name, new Int32Array([value]), 4) === 0;
}

/** Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE as root, else SO_RCVBUF, capped by rmem_max). */
export function setReceiveBuffer(fd: number, bytes: number): void {
  if (!setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes)) setIntOption(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

export function closeFd(fd: number): void {
  libc().symbols.close(fd);
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

/** Sends one message to the kernel; returns 0 or the errno. Never blocks (netlink to the kernel is synchronous). */
export function sendRaw(fd: number, msg: Uint8Array): number {
  const n = Number(libc().symbols.sendto(fd, msg, msg.length, 0, KERNEL_ADDR, KERNEL_ADDR.length));
  return n < 0 ? errno() : 0;
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
  return -new DataView(body.buffer, body.byteOffset, 4).getInt32(0, true);
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
    const n = Number(libc().symbols.recv(fd, buf, buf.length, MSG_DONTWAIT));
    if (n < 0) {
      const e = errno();
      if (e === EINTR || e === ENOBUFS) continue;
      throw new NetlinkError(`${what}: no acknowledgement from the kernel (${errnoName(e)})`, e);
    }
    const chunk = buf.slice(0, n);
    let acked: number | null = null;
    for (const m of splitMessages(chunk).messages) {
      if (m.type === NLMSG_ERROR && m.seq === seq) acked = nlmsgErrno(m.body);
    }
    if (acked === null) {
      early.push(chunk);
      continue;
    }
    if (acked !== 0) throw new NetlinkError(`${what}: ${errnoName(acked)}`, acked);
    // Anything else in the same chunk besides our ACK is kept too; the walker ignores the ACK.
    early.push(chunk);
    return early;
  }
  throw new NetlinkError(`${what}: no acknowledgement from the kernel`, 0);
}

export function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
}

/**
 * A netfilter socket in `netns` with a receive buffer of `recvBufferBytes`, configured by
 * `configure` (its requests; it returns what they read on the way). Closed again if that throws.
 */
export function openConfigured(netns: string | null, recvBufferBytes: number, configure: (fd: number) => Uint8Array[]): { fd: number; early: Uint8Array[] } {
  const { fd } = openNetfilterSocket(netns);
  try {
    setReceiveBuffer(fd, recvBufferBytes);
    return { fd, early: configure(fd) };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
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
    if (e instanceof NetlinkError && e.errno === 1) {
      throw new NetlinkError(`${e.message}: the ${noun} is bound by another socket, or this process lacks CAP_NET_ADMIN there`, e.errno);
    }
    throw e;
  }
}

export interface ReaderStats {
  enobufs: number;
}

/**
 * Reads `fd` on the event loop with Bun.file(fd).stream() and hands each chunk to `onChunk`.
 * A read error (ENOBUFS when the kernel dropped messages because we fell behind) ends a Bun
 * stream, so the stream is restarted on the same fd; ENOBUFS is counted, other errors reported.
 * `stop()` cancels the current stream; the caller then closes the fd with closeAndRelease().
 */
export function startReader(
  fd: number,
  onChunk: (chunk: Uint8Array) => void,
  onReadError: (e: Error, errno: number | null) => void,
  stats: ReaderStats,
): { stop(): Promise<void> } {
  let stopped = false;
  let current: { cancel(): Promise<void> } | null = null;
  let restarts = 0;
  let lastRestart = 0;

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const reader = Bun.file(fd).stream().getReader();
      current = reader;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || stopped) break;
          if (value && value.length) onChunk(value);
        }
        if (stopped) return;
        // A socket does not end; an end means the fd went away under us.
        onReadError(new Error("netlink socket stream ended"), null);
        return;
      } catch (err) {
        if (stopped) return;
        const code = (err as { code?: string; errno?: number }).code;
        const no = (err as { errno?: number }).errno;
        const isEnobufs = code === "ENOBUFS" || no === ENOBUFS || no === -ENOBUFS;
        if (isEnobufs) stats.enobufs++;
        else onReadError(err instanceof Error ? err : new Error(String(err)), typeof no === "number" ? Math.abs(no) : null);
        // Restart on the same fd; a persistent non-ENOBUFS failure would spin, so back off.
        const now = performance.now();
        restarts = now - lastRestart < 1000 ? restarts + 1 : 0;
        lastRestart = now;
        if (!isEnobufs && restarts > 20) {
          onReadError(new Error("netlink socket keeps failing; reader stopped"), null);
          return;
        }
        if (restarts > 5) await Bun.sleep(Math.min(100 * restarts, 1000));
      }
    }
  };
  const done = loop();

  return {
    async stop() {
      stopped = true;
      try {
        await current?.cancel();
      } catch {}
      await done.catch(() => {});
    },
  };
}

const POLLIN = 0x1;
const POLLNVAL = 0x20;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
/** Largest read: one netlink message with a full copy range fits many times over. */
const THREAD_READ_BYTES = 1 << 17;

/** An eventfd that wakes a thread blocked in readUntilWoken() (see wakeUp). */
export function makeWakeFd(): number {
  const fd = libc().symbols.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw new NetlinkError(`eventfd failed: ${errnoName(errno())}`, errno());
  return fd;
}

export function wakeUp(wakeFd: number): void {
  const one = new BigUint64Array([1n]);
  libc().symbols.write(wakeFd, one, 8);
}

/**
 * Reads the sockets on the calling thread, which waits in poll() until a message or a wake-up on
 * `wakeFd` arrives, and hands each chunk to its socket's `onChunk` (valid only during the call).
 * For a Worker: this blocks its thread, which is the point (it wakes about 0.15 ms after a
 * packet), and would freeze the event loop of the main thread. Returns once woken, after reading
 * what was queued; ENOBUFS is counted, EINTR retried, anything else thrown.
 */
export function readUntilWoken(sockets: { fd: number; onChunk: (chunk: Uint8Array) => void }[], wakeFd: number, stats: ReaderStats): void {
  const c = libc().symbols;
  const all = [...sockets.map((s) => s.fd), wakeFd];
  const fds = new Uint8Array(8 * all.length); // struct pollfd: int fd, short events, short revents
  const view = new DataView(fds.buffer);
  all.forEach((fd, i) => {
    view.setInt32(8 * i, fd, true);
    view.setInt16(8 * i + 4, POLLIN, true);
  });
  const woken = 8 * sockets.length + 6;
  const buf = new Uint8Array(THREAD_READ_BYTES);
  for (;;) {
    for (let i = 0; i < all.length; i++) view.setInt16(8 * i + 6, 0, true);
    if (c.poll(fds, all.length, -1) < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new NetlinkError(`poll failed: ${errnoName(e)}`, e);
    }
    // Everything queued now (so a wake-up loses nothing already sent), then back to poll.
    // ENOBUFS shows as POLLERR and fails one recv.
    sockets.forEach(({ fd, onChunk }, i) => {
      const revents = view.getInt16(8 * i + 6, true);
      if (revents === 0) return;
      if (revents & POLLNVAL) throw new NetlinkError("a netlink socket was closed under its reader", 9);
      for (;;) {
        const n = Number(c.recv(fd, buf, buf.length, MSG_DONTWAIT));
        if (n >= 0) {
          onChunk(buf.subarray(0, n));
          continue;
        }
        const e = errno();
        if (e === EAGAIN) break;
        if (e === EINTR) continue;
        if (e === ENOBUFS) {
          stats.enobufs++;
          continue;
        }
        throw new NetlinkError(`recv failed: ${errnoName(e)}`, e);
      }
    });
    if (view.getInt16(woken, true) !== 0) return;
  }
}

export interface ListenerStats {
  packets: number;
  enobufs: number;
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

/**
 * Starts reading packet messages of `format` from `fd`: each one's attributes (with a header of
 * the right size) go to `onPacket`, anything else counts as a decode error. Returns the stats and
 * a close() that stops reading and releases the socket (once; later calls share the first).
 */
export function listenForPackets(
  fd: number,
  early: Uint8Array[],
  format: PacketFormat,
  onPacket: (attrs: (Uint8Array | undefined)[], header: Uint8Array) => void,
  onError: (e: Error) => void,
  what: string,
  beforeRelease: () => void = () => {},
): { stats: ListenerStats; close(): Promise<void> } {
  const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
  const link = fdLink(fd);
  const listener = startListener(fd, early, packetDecoder(format, onPacket, stats), stats, onError);
  let closing: Promise<void> | null = null;
  return {
    stats,
    close() {
      closing ??= listener.stop().then(async () => {
        beforeRelease();
        if (!(await closeAndRelease(fd, link))) onError(new Error(`${what}: socket still open after close`));
      });
      return closing;
    },
  };
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

/** Delivers the messages of `early` chunks (read while configuring), then of every chunk read from `fd`, to `onMessage`. */
export function startListener(
  fd: number,
  early: Uint8Array[],
  onMessage: (m: RawMessage) => void,
  stats: ListenerStats,
  onError: (e: Error) => void,
): { stop(): Promise<void> } {
  const onChunk = messageSplitter(onMessage, stats, onError);
  let stopped = false;
  let reader: { stop(): Promise<void> } | null = null;
  // Start after the caller got its handle back: callbacks never run inside open*().
  const started = Promise.resolve().then(() => {
    if (stopped) return;
    for (const chunk of early) onChunk(chunk);
    if (stopped) return;
    reader = startReader(fd, onChunk, (e) => onError(e), stats);
  });
  return {
    async stop() {
      stopped = true;
      await started.catch(() => {});
      await reader?.stop();
    },
  };
}
