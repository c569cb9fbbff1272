// Entering a network namespace without `ip netns exec` (which remounts /sys and fails under
// rootless runtimes): setns(2) on the JS thread through bun:ffi, run something synchronous that
// inherits the namespace (a spawn, a socket), then setns back. The process itself never moves.
import { closeSync, constants, mkdirSync, openSync, unlinkSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, libc } from "./libc.ts";

const CLONE_NEWNET = 0x40000000;

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

const MNT_DETACH = 2;
const MS_BIND = 4096;
const MS_REC = 16384;
const MS_SHARED = 1 << 20;
const RUN_DIR = "/run/netns";

const cstr = (s: string | null) => (s === null ? null : ptr(Buffer.from(`${s}\0`)));

function mount(src: string | null, target: string, type: string | null, flags: number): number {
  return libc().mount(cstr(src), cstr(target), cstr(type), flags, null) === 0 ? 0 : errno();
}

/**
 * What `ip netns add NAME` does, in-process (a process less per run): /run/netns made a shared
 * mount point (so the namespace's mount reaches other mount namespaces, as ip arranges), the file
 * made, a new network namespace made on this thread and bind-mounted there, then back home.
 * Throws, leaving nothing behind, when a step fails; the caller may then ask ip itself.
 */
export function createNetns(name: string): void {
  const path = netnsPath(name);
  mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
  let e = mount("", RUN_DIR, "none", MS_SHARED | MS_REC);
  if (e === EINVAL) {
    // Not a mount point yet: make it one (a bind mount on itself), then shared.
    e = mount(RUN_DIR, RUN_DIR, "none", MS_BIND | MS_REC) || mount("", RUN_DIR, "none", MS_SHARED | MS_REC);
  }
  if (e !== 0) throw new Error(`mount --make-shared ${RUN_DIR}: errno ${e}`);
  closeSync(openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_EXCL, 0));
  const home = openSync("/proc/thread-self/ns/net", "r");
  try {
    const { unshare, setns } = libc();
    if (unshare(CLONE_NEWNET) !== 0) throw new Error(`unshare(CLONE_NEWNET): errno ${errno()}`);
    try {
      const m = mount("/proc/thread-self/ns/net", path, "none", MS_BIND);
      if (m !== 0) throw new Error(`mount --bind of the new namespace on ${path}: errno ${m}`);
    } finally {
      if (setns(home, CLONE_NEWNET) !== 0) {
        console.error("proxywall: fatal: cannot return to its own network namespace");
        process.exit(70);
      }
    }
  } catch (err) {
    unlinkSync(path);
    throw err;
  } finally {
    closeSync(home);
  }
}
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
