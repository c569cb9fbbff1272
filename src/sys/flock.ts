// flock(2) through bun:ffi. A lock held on an open file lives exactly as long as the process that
// holds it, in every PID namespace: the kernel drops it when the holder dies, even by SIGKILL.
import { dlopen, FFIType } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;

let lib: { symbols: { flock: (fd: number, op: number) => number } } | null = null;
function libc() {
  return (lib ??= dlopen("libc.so.6", { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } }) as never);
}

/** Takes an exclusive lock without waiting; false when another open file holds it. */
export function tryLock(fd: number): boolean {
  return libc().symbols.flock(fd, LOCK_EX | LOCK_NB) === 0;
}
