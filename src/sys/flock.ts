// flock(2) through bun:ffi. A lock held on an open file lives exactly as long as the process that
// holds it, in every PID namespace: the kernel drops it when the holder dies, even by SIGKILL.
import { libc } from "./libc.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

/** Takes an exclusive lock without waiting; false when another open file holds it. */
export function tryLock(fd: number): boolean {
  return libc().flock(fd, LOCK_EX | LOCK_NB) === 0;
}
