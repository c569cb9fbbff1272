// errno values and their names, for messages (asm-generic/errno-base.h, asm-generic/errno.h: the
// same on x86_64 and arm64). Pure: no FFI here; reading errno itself is libc.ts's errno().
import { constants } from "node:os";

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
export const EOPNOTSUPP = 95;
export const ENOBUFS = 105;

/**
 * Every name the runtime knows (the names node:net puts in its messages, "read ECONNRESET"), the
 * first of two for one number (EAGAIN, not EWOULDBLOCK), and two the kernel uses that it lacks.
 */
const NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!NAMES.has(n)) NAMES.set(n, name);
NAMES.set(95, "EOPNOTSUPP"); // not ENOTSUP: the name the netlink and socket calls document
NAMES.set(524, "ENOTSUPP"); // kernel-internal, returned by some netfilter requests

/** "EPERM" for 1; "errno N" for a number without a name. */
export function errnoName(n: number): string {
  return NAMES.get(n) ?? `errno ${n}`;
}
