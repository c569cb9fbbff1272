// Entering a network namespace without `ip netns exec` (which remounts /sys and fails under
// rootless runtimes): setns(2) on the JS thread through bun:ffi, run something synchronous that
// inherits the namespace (a spawn, a socket), then setns back. The process itself never moves.
import { closeSync, openSync, unlinkSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, libc } from "./libc.ts";

const CLONE_NEWNET = 0x40000000;

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

const MNT_DETACH = 2;
const EINVAL = 22;
const ENOENT = 2;

/**
 * What `ip netns del NAME` does, in-process (a process less per run): detach the namespace's bind
 * mount, then remove its file. The namespace itself goes when its last process has. Throws with
 * errno when either step fails for another reason than the mount or the file not being there.
 */
export function deleteNetns(name: string): void {
  const path = netnsPath(name);
  if (libc().umount2(ptr(Buffer.from(`${path}\0`)), MNT_DETACH) !== 0) {
    const e = errno();
    if (e !== EINVAL && e !== ENOENT) throw new Error(`umount ${path}: errno ${e}`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Runs `fn` with this thread in the namespace at `nsPath`; `fn` must be synchronous. */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const { setns } = libc();
  const home = openSync("/proc/thread-self/ns/net", "r");
  const target = openSync(nsPath, "r");
  try {
    if (setns(target, CLONE_NEWNET) !== 0) throw new Error(`cannot enter network namespace ${nsPath}: setns failed`);
    try {
      return fn();
    } finally {
      // Not getting home would leave proxywall itself inside the sandbox: nothing sane can follow.
      if (setns(home, CLONE_NEWNET) !== 0) {
        console.error("proxywall: fatal: cannot return to its own network namespace");
        process.exit(70);
      }
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
}
