// Reading netlink sockets on a thread of its own (the watch thread, a Worker): the thread waits in
// poll(2) until a message or a wake-up arrives, about 0.15 ms after a packet. Blocking is the
// point here; on the main thread it would freeze the event loop (netlink-stream.ts reads there).
import { EAGAIN, EBADF, EINTR, ENOBUFS, errnoName } from "../sys/errno.ts";
import { makeEventFd } from "../sys/eventfd.ts";
import { errno, libc } from "../sys/libc.ts";
import { NetlinkError } from "./netlink-codec.ts";
import { recvNow } from "./netlink-socket.ts";

const POLLIN = 0x1;
const POLLNVAL = 0x20;
/** Largest read: one netlink message with a full copy range fits many times over. */
const READ_BYTES = 1 << 17;

/** An eventfd that wakes a thread blocked in readUntilWoken() (see eventfd.ts's wake). */
export function makeWakeFd(): number {
  const fd = makeEventFd();
  if (fd < 0) throw new NetlinkError(`eventfd failed: ${errnoName(-fd)}`, -fd);
  return fd;
}

export interface PolledSocket {
  fd: number;
  /** Each chunk read; valid only during the call. */
  onChunk: (chunk: Uint8Array) => void;
  /** Reads what is queued itself (a socket that needs recvfrom), instead of recv into onChunk. */
  drain?: (buf: Uint8Array) => void;
}

/** struct pollfd for each fd: int fd, short events (POLLIN), short revents. */
function pollFds(fds: readonly number[]): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(8 * fds.length);
  const view = new DataView(bytes.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(8 * i, fd, true);
    view.setInt16(8 * i + 4, POLLIN, true);
  });
  return { bytes, view };
}

/** Everything queued on `fd` now, to onChunk. ENOBUFS (POLLERR, it fails one recv) is counted, EINTR retried. */
function readQueued({ fd, onChunk }: PolledSocket, buf: Uint8Array, stats: { enobufs: number }): void {
  for (;;) {
    const n = recvNow(fd, buf);
    if (n >= 0) onChunk(buf.subarray(0, n));
    else if (n === -EAGAIN) return;
    else if (n === -ENOBUFS) stats.enobufs++;
    else if (n !== -EINTR) throw new NetlinkError(`recv failed: ${errnoName(-n)}`, -n);
  }
}

/**
 * Reads the sockets on the calling thread, which waits in poll() until a message or a wake-up on
 * `wakeFd` arrives, and hands each chunk to its socket's `onChunk`. Returns once woken, after
 * reading what was queued (so a wake-up loses nothing already sent); anything but ENOBUFS and
 * EINTR is thrown.
 */
export function readUntilWoken(sockets: readonly PolledSocket[], wakeFd: number, stats: { enobufs: number }): void {
  const { bytes, view } = pollFds([...sockets.map((s) => s.fd), wakeFd]);
  const count = sockets.length + 1;
  const revents = (i: number) => view.getInt16(8 * i + 6, true);
  const buf = new Uint8Array(READ_BYTES);
  for (;;) {
    for (let i = 0; i < count; i++) view.setInt16(8 * i + 6, 0, true);
    if (libc().poll(bytes, count, -1) < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new NetlinkError(`poll failed: ${errnoName(e)}`, e);
    }
    sockets.forEach((s, i) => {
      if (revents(i) === 0) return;
      if (revents(i) & POLLNVAL) throw new NetlinkError("a netlink socket was closed under its reader", EBADF);
      if (s.drain) s.drain(buf);
      else readQueued(s, buf, stats);
    });
    if (revents(sockets.length) !== 0) return;
  }
}
