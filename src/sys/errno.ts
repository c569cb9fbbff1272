// errno values and their names, for messages (asm-generic/errno-base.h, asm-generic/errno.h: the
// same on x86_64 and arm64). Pure: no FFI here; reading errno itself is libc.ts's errno().

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
export const EOPNOTSUPP = 95;
export const ENOBUFS = 105;

const NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
  16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 24: "EMFILE", 34: "ERANGE", 93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 105: "ENOBUFS", 111: "ECONNREFUSED", 524: "ENOTSUPP",
};

/** "EPERM" for 1; "errno N" for a number without a name here. */
export function errnoName(n: number): string {
  return NAMES[n] ?? `errno ${n}`;
}
