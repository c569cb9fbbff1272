// The C library through bun:ffi: the one dlopen of the process (of each thread: a Worker has its
// own module instance, hence its own handle), with every symbol any module calls. Opened on first
// use, so commands that never call libc (--version, rules, parse) never load it.
//
// Only portable symbols plus __errno_location, which glibc and musl both export. On musl the
// dynamic loader maps the name "libc.so.6" to musl itself (shared/BUN-NOTES.md). musl's
// sched_setscheduler() is a stub that always fails, so sched.ts makes the system call through
// `syscall` instead.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";

const { i32, u32, i64, i64_fast, u64, ptr } = FFIType;

function load() {
  return dlopen("libc.so.6", {
    // sockets (netlink, sock_diag, the self-test's probes)
    socket: { args: [i32, i32, i32], returns: i32 },
    bind: { args: [i32, ptr, u32], returns: i32 },
    connect: { args: [i32, ptr, u32], returns: i32 },
    getsockname: { args: [i32, ptr, ptr], returns: i32 },
    setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
    sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
    recv: { args: [i32, ptr, u64, i32], returns: i64 },
    recvfrom: { args: [i32, ptr, u64, i32, ptr, ptr], returns: i64 },
    // file descriptors (the watch thread's poll and wake-up, /dev/kmsg, claim locks)
    close: { args: [i32], returns: i32 },
    pipe2: { args: [ptr, i32], returns: i32 },
    poll: { args: [ptr, u64, i32], returns: i32 },
    eventfd: { args: [u32, i32], returns: i32 },
    write: { args: [i32, ptr, u64], returns: i64 },
    lseek: { args: [i32, i64, i32], returns: i64 },
    flock: { args: [i32, i32], returns: i32 },
    // the proxy's splice relay (splice.ts): bytes moved socket -> pipe -> socket in the kernel
    read: { args: [i32, ptr, u64], returns: i64 },
    splice: { args: [i32, ptr, i32, ptr, u64, u32], returns: i64_fast },
    epoll_create1: { args: [i32], returns: i32 },
    epoll_ctl: { args: [i32, i32, i32, ptr], returns: i32 },
    epoll_wait: { args: [i32, ptr, i32, i32], returns: i32 },
    shutdown: { args: [i32, i32], returns: i32 },
    getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
    // the JIT re-execution that keeps an --events fd:N open (jit-tiers.ts)
    execve: { args: [ptr, ptr, ptr], returns: i32 },
    // namespaces, scheduling, children
    setns: { args: [i32, i32], returns: i32 },
    syscall: { args: [i64, i64, i64, ptr], returns: i64 },
    waitid: { args: [i32, u32, ptr, i32], returns: i32 },
    waitpid: { args: [i32, ptr, i32], returns: i32 },
    // CMD's init (src/sandbox/init.ts): its namespaces, /proc, credentials, capabilities, seccomp.
    // prctl is variadic; every option used passes unsigned longs, which the Linux ABIs pass in
    // the same registers as fixed arguments.
    unshare: { args: [i32], returns: i32 },
    mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
    umount2: { args: [ptr, i32], returns: i32 },
    prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
    capget: { args: [ptr, ptr], returns: i32 },
    capset: { args: [ptr, ptr], returns: i32 },
    setgroups: { args: [u64, ptr], returns: i32 },
    setresgid: { args: [u32, u32, u32], returns: i32 },
    setresuid: { args: [u32, u32, u32], returns: i32 },
    fcntl: { args: [i32, i32, i32], returns: i32 },
    // clocks (a boot time as precise as the clocks, for process start times)
    clock_gettime: { args: [i32, ptr], returns: i32 },
    __errno_location: { args: [], returns: ptr },
  });
}

let lib: ReturnType<typeof load> | null = null;

/** The libc functions, opened on the first call. */
export function libc(): ReturnType<typeof load>["symbols"] {
  return (lib ??= load()).symbols;
}

/** errno of this thread, as the last failed libc call left it (positive). */
export function errno(): number {
  const p = libc().__errno_location() as Pointer | null;
  return p ? read.i32(p, 0) : 0;
}
