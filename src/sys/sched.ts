// The calling thread's scheduling policy, through bun:ffi. sched_setscheduler(2) acts on the
// calling thread when given pid 0, so a Worker changes its own thread and no other. It is called
// as a raw system call: musl's sched_setscheduler() is a stub that always fails (ENOSYS), since
// the Linux call is per thread where POSIX wants it per process.
import { libc } from "./libc.ts";

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
/** Children of the thread (it has none) would start at normal priority. */
const SCHED_RESET_ON_FORK = 0x40000000;
/** __NR_sched_setscheduler: arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h (arm64). */
const NR_SCHED_SETSCHEDULER: Partial<Record<NodeJS.Architecture, number>> = { x64: 144, arm64: 119 };

/**
 * Puts the calling thread at real-time priority 1 (SCHED_FIFO, the lowest real-time level) or back
 * to normal. False when the kernel refuses (no CAP_SYS_NICE and no RLIMIT_RTPRIO) or the
 * architecture is not one proxywall ships for.
 */
export function setRealtime(on: boolean): boolean {
  const nr = NR_SCHED_SETSCHEDULER[process.arch];
  if (nr === undefined) return false;
  const param = new Int32Array([on ? 1 : 0]); // struct sched_param { int sched_priority; }
  return Number(libc().syscall(nr, 0, (on ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, param)) === 0;
}
