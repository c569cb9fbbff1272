// A PID namespace for one child: unshare(CLONE_NEWPID) changes only the namespace the calling
// thread's *next* children are made in, so the JS thread unshares, spawns (the child is PID 1
// there) and setns()es back to its own, as inNetns does for the network namespace. Bun is
// multi-threaded, which unshare(CLONE_NEWPID) allows (unlike CLONE_NEWUSER).
import { closeSync, openSync } from "node:fs";
import { errno, libc } from "./libc.ts";

const CLONE_NEWPID = 0x20000000;

/** Runs `fn` (synchronous) with the thread's children going to a new PID namespace; errno when none can be made. */
export function inNewPidNamespace<T>(fn: () => T): { value: T } | { errno: number } {
  const { unshare, setns } = libc();
  const home = openSync("/proc/thread-self/ns/pid", "r");
  try {
    if (unshare(CLONE_NEWPID) !== 0) return { errno: errno() };
    try {
      return { value: fn() };
    } finally {
      // Left in place, every later child (ip, nft) would try to join a namespace whose init may be gone.
      if (setns(home, CLONE_NEWPID) !== 0) {
        console.error("proxywall: fatal: cannot return to its own PID namespace for children");
        process.exit(70);
      }
    }
  } finally {
    closeSync(home);
  }
}
