// splice(2), pipes and epoll(7) for the proxy's splice relay (src/proxy/splice-*.ts): a thin layer
// over libc.ts with the Linux constants and struct layouts they need. Every call is non-blocking
// except epollWait, which the relay thread makes on purpose.
import { errno, libc } from "./libc.ts";
import { MSG_DONTWAIT, MSG_PEEK, SHUT_WR, SO_ERROR, SOL_SOCKET } from "./socket-abi.ts";

export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;
const EPOLL_CTL_ADD = 1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;
const F_SETPIPE_SZ = 1031;

/** struct epoll_event: packed on x86_64 (u32 events, u64 data: 12 bytes), naturally aligned elsewhere (16). */
export const EPOLL_EVENT_SIZE = process.arch === "x64" ? 12 : 16;
const DATA_OFFSET = process.arch === "x64" ? 4 : 8;

/** Returns the result, or -errno. */
function orErrno(r: number): number {
  return r < 0 ? -errno() : r;
}

/** A pipe (read end, write end), non-blocking and close-on-exec, of at least `bytes` where the kernel lets it; or -errno. */
export function makePipe(bytes: number): [number, number] | number {
  const fds = new Int32Array(2);
  if (libc().pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) return -errno();
  // Larger than the default 64 KiB means fewer calls per MiB; refused beyond the user's pipe
  // budget (fs/pipe-user-pages-soft), where the default size still works.
  libc().fcntl(fds[1]!, F_SETPIPE_SZ, bytes);
  return [fds[0]!, fds[1]!];
}

/** A close-on-exec duplicate of `fd` (the same socket, under a descriptor of our own), or -errno. */
export const dupFd = (fd: number): number => orErrno(libc().fcntl(fd, F_DUPFD_CLOEXEC, 0));

/** Moves up to `len` bytes from `from` to `to` (one of them a pipe): bytes moved, 0 at end of input, or -errno. */
export function splice(from: number, to: number, len: number): number {
  const n = libc().splice(from, null, to, null, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK) as number;
  return n < 0 ? -errno() : n;
}

/** Writes what it can of `bytes`: the count, or -errno. */
export const writeFd = (fd: number, bytes: Uint8Array): number => orErrno(Number(libc().write(fd, bytes, bytes.length)));

/** Our FIN to the peer; the other direction keeps flowing. */
export const shutdownWrite = (fd: number): number => orErrno(libc().shutdown(fd, SHUT_WR));

const PEEK = new Uint8Array(1);

/** Whether the peer's FIN is the next thing `fd` would read, with no byte before it (a peek: nothing is taken). */
export const finPending = (fd: number): boolean => Number(libc().recv(fd, PEEK, 1, MSG_PEEK | MSG_DONTWAIT)) === 0;

/** The socket's pending error (SO_ERROR, which reading clears), 0 for none. */
export function socketError(fd: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  return libc().getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len) === 0 ? v[0]! : errno();
}

export const epollCreate = (): number => orErrno(libc().epoll_create1(O_CLOEXEC));

/** Watches `fd` for `events`, tagged with `data` (an integer below 2^32). */
export function epollAdd(ep: number, fd: number, events: number, data: number): number {
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  const view = new DataView(ev.buffer);
  view.setUint32(0, events >>> 0, true);
  view.setUint32(DATA_OFFSET, data >>> 0, true);
  return orErrno(libc().epoll_ctl(ep, EPOLL_CTL_ADD, fd, ev));
}

/** Ready events into `buf` (room for buf.byteLength / EPOLL_EVENT_SIZE); the count or -errno. */
export const epollWait = (ep: number, buf: Uint8Array, timeoutMs: number): number =>
  orErrno(libc().epoll_wait(ep, buf, Math.floor(buf.byteLength / EPOLL_EVENT_SIZE), timeoutMs));

/** The i-th event's flags and tag, of an epollWait result. */
export const eventFlags = (view: DataView, i: number): number => view.getUint32(i * EPOLL_EVENT_SIZE, true);
export const eventData = (view: DataView, i: number): number => view.getUint32(i * EPOLL_EVENT_SIZE + DATA_OFFSET, true);
