// The calling thread's scheduling policy, through bun:ffi (sched_setscheduler acts on the calling
// thread when given pid 0, so a Worker can change its own thread and no other).
import { dlopen, FFIType } from "bun:ffi";

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
/** Children of the thread (it has none) would start at normal priority. */
const SCHED_RESET_ON_FORK = 0x40000000;

let libc: ReturnType<typeof load> | null = null;
function load() {
  return dlopen("libc.so.6", {
    sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  });
}

/**
 * Puts the calling thread at real-time priority 1 (SCHED_FIFO, the lowest real-time level) or back
 * to normal. False when the kernel refuses (no CAP_SYS_NICE and no RLIMIT_RTPRIO).
 */
export function setRealtime(on: boolean): boolean {
  libc ??= load();
  const param = new Int32Array([on ? 1 : 0]);
  return libc.symbols.sched_setscheduler(0, (on ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, param) === 0;
}
