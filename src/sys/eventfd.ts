// eventfd(2): how one thread wakes another blocked in poll or epoll_wait (the watch thread, the
// splice relay thread). One place for the flags and the 8-byte counter both threads use.
import { errno, libc } from "./libc.ts";

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;

/** A non-blocking, close-on-exec eventfd, or -errno. */
export function makeEventFd(): number {
  const fd = libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return fd < 0 ? -errno() : fd;
}

/** Wakes the thread waiting on the eventfd (adds 1 to its counter). */
export const wake = (fd: number): void => void libc().write(fd, new BigUint64Array([1n]), 8);

/** Reads (and so resets) an eventfd's counter: the wake-ups since the last read. */
export function drainEventFd(fd: number): number {
  const v = new BigUint64Array(1);
  return Number(libc().read(fd, v, 8)) === 8 ? Number(v[0]) : 0;
}

export const closeFd = (fd: number): void => void libc().close(fd);
