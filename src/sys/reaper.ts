// Zombie reaping for when proxywall is PID 1 (a container entrypoint): orphaned grandchildren are
// re-parented to it, and Bun reaps only the children it spawned. waitid(WNOWAIT) peeks at a
// waitable child first, so the ones Bun is waiting for (CMD, tools) are left for Bun.
import { ptr } from "bun:ffi";
import { libc } from "./libc.ts";

const P_ALL = 0;
const WNOHANG = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;

export function startReaper(isOurs: (pid: number) => boolean, intervalMs = 250): () => void {
  const c = libc();
  const info = new Int32Array(32); // siginfo_t is 128 bytes; si_pid sits at byte 16
  const status = new Int32Array(1);
  const reap = () => {
    for (let i = 0; i < 64; i++) {
      info.fill(0);
      if (c.waitid(P_ALL, 0, ptr(info), WEXITED | WNOHANG | WNOWAIT) !== 0) return;
      const pid = info[4]!;
      if (pid === 0 || isOurs(pid)) return;
      c.waitpid(pid, ptr(status), WNOHANG);
    }
  };
  const timer = setInterval(reap, intervalMs);
  timer.unref();
  process.on("SIGCHLD", reap);
  return () => {
    clearInterval(timer);
    process.off("SIGCHLD", reap);
  };
}
