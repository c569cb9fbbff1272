// The Linux socket constants the FFI callers pass to libc (socket, sendto, recv, getsockopt,
// shutdown): one table, as errno.ts is for error numbers. The same on every Linux architecture
// proxywall is built for.
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_PEEK = 0x2;
export const MSG_DONTWAIT = 0x40;
export const SOL_SOCKET = 1;
export const SO_ERROR = 4;
export const SHUT_WR = 1;
