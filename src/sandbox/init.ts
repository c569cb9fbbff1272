// CMD's init: proxywall started again, inside the sandbox, as the exec stage Bun.spawn lacks (it
// has no hook between fork and exec). cmd.ts starts it as PID 1 of a PID namespace of its own;
// main.ts runs this first thing when INIT_ENV is set, before the CLI and the JIT restart. On the
// thread that will spawn CMD it makes a mount namespace with a /proc of the new PID namespace,
// drops the capabilities that reach the wall, changes user, installs the socket-family filter,
// then runs CMD, passes signals on, reaps every orphan (it is PID 1 there) and reports CMD's
// status on fd 3. When it exits, the kernel ends every process left in the PID namespace.
//
// Where no PID namespace could be made (cmd.ts says so), it becomes a child subreaper instead and
// ends CMD's descendants by scan when CMD exits.
import { closeSync, fstatSync, readdirSync, readSync } from "node:fs";
import { constants } from "node:os";
import { ptr } from "bun:ffi";
import { errno, libc } from "../sys/libc.ts";
import { dropCapabilities } from "../sys/caps.ts";
import { installSocketFilter } from "../sys/seccomp.ts";
import { startReaper } from "../sys/reaper.ts";
import { killDescendants } from "../sys/descendants.ts";
import { statFields } from "../sys/procfs.ts";
import { FORWARDED_SIGNALS, GO_FD, INIT_ENV, STATUS_FD, type InitConfig, type InitMessage } from "./init-protocol.ts";

const CLONE_NEWNS = 0x00020000;
const MS = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, REMOUNT: 32, BIND: 4096, REC: 16384, PRIVATE: 1 << 18 } as const;
const PR_SET_DUMPABLE = 4;
const PR_SET_CHILD_SUBREAPER = 36;
/** Docker's read-only /proc paths: writable by uid 0 without any capability (sysctls, sysrq). */
const READ_ONLY_PROC = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"];

const cstr = (s: string) => Buffer.from(`${s}\0`);

/** One line to cmd.ts (a pipe; lines this short are written whole). */
function report(m: InitMessage): void {
  const bytes = Buffer.from(`${JSON.stringify(m)}\n`);
  libc().write(STATUS_FD, ptr(bytes), bytes.length);
}

function mount(src: string | null, target: string, type: string | null, flags: number): void {
  const c = libc();
  const p = (s: string | null) => (s === null ? null : ptr(cstr(s)));
  if (c.mount(p(src), ptr(cstr(target)), p(type), flags, null) !== 0) throw new Error(`mount ${target}: errno ${errno()}`);
}

/** A mount namespace for this thread with a /proc of its PID namespace; what failed, or null. */
function ownProc(): string | null {
  const c = libc();
  if (c.unshare(CLONE_NEWNS) !== 0) return `unshare(CLONE_NEWNS) failed: errno ${errno()}`;
  try {
    // Private first: the new /proc must not propagate back to the host's mount namespace.
    mount(null, "/", null, MS.REC | MS.PRIVATE);
    mount("proc", "/proc", "proc", MS.NOSUID | MS.NODEV | MS.NOEXEC);
  } catch (e) {
    return (e as Error).message;
  }
  for (const path of READ_ONLY_PROC) {
    try {
      // A path this kernel lacks fails the bind and is skipped.
      mount(path, path, null, MS.BIND | MS.REC);
      mount(null, path, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
    } catch {}
  }
  return null;
}

/** Supplementary groups, gid and uid, for all threads (glibc and musl apply set*id to each). */
function becomeUser(user: NonNullable<InitConfig["user"]>): void {
  const c = libc();
  const groups = new Uint32Array(user.groups);
  if (c.setgroups(groups.length, ptr(groups.length > 0 ? groups : new Uint32Array(1))) !== 0) throw new Error(`setgroups failed: errno ${errno()}`);
  if (c.setresgid(user.gid, user.gid, user.gid) !== 0) throw new Error(`setresgid(${user.gid}) failed: errno ${errno()}`);
  if (c.setresuid(user.uid, user.uid, user.uid) !== 0) throw new Error(`setresuid(${user.uid}) failed: errno ${errno()}`);
}

function parseConfig(text: string | undefined): InitConfig {
  const o = JSON.parse(text ?? "null") as InitConfig;
  if (typeof o !== "object" || o === null || typeof o.pidns !== "boolean" || typeof o.keepCaps !== "boolean" || !Array.isArray(o.families)) throw new Error("bad init configuration");
  return o;
}

export async function runInit(cmd: string[]): Promise<number> {
  // Only cmd.ts's pipe is a report channel: anyone else setting the variable gets an error.
  const st = fstatSync(STATUS_FD, { throwIfNoEntry: false });
  if (!st?.isFIFO() && !st?.isSocket()) throw new Error("internal entry point: not started by proxywall run");
  const cfg = parseConfig(process.env[INIT_ENV]);
  delete process.env[INIT_ENV];
  const c = libc();
  c.fcntl(STATUS_FD, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
  // Signals that come before CMD runs wait for it (cmd.ts holds them back too).
  let child: Bun.Subprocess | null = null;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals) => (child ? child.kill(sig) : pending.push(sig));
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);

  let procIsOurs = false;
  if (cfg.pidns) {
    const why = ownProc();
    if (why) report({ t: "degraded", what: "proc", why });
    procIsOurs = why === null;
  } else c.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  try {
    // Not dumpable: CMD cannot ptrace this process, read its memory or take its fds.
    c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (!cfg.keepCaps && !dropCapabilities().bounding) report({ t: "degraded", what: "bounding", why: "no CAP_SETPCAP" });
    if (cfg.user) becomeUser(cfg.user);
    installSocketFilter(cfg.families, !cfg.keepCaps);
  } catch (e) {
    report({ t: "failed", code: 126, why: `cannot drop privileges for CMD: ${(e as Error).message}` });
    return 126;
  }
  if (!waitForGo()) return 1;
  try {
    child = Bun.spawn(cmd, { env: process.env, stdio: ["inherit", "inherit", "inherit"] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const notFound = err.code === "ENOENT" || /no such file|not found/i.test(err.message);
    const why = notFound ? "command not found" : err.code === "EACCES" ? "permission denied" : err.message;
    report({ t: "failed", code: notFound ? 127 : 126, why });
    return notFound ? 127 : 126;
  }
  const cmdPid = child.pid;
  report({ t: "started", pid: cmdPid });
  for (const sig of pending.splice(0)) child.kill(sig);
  const stopReaper = startReaper((pid) => pid === cmdPid);
  await child.exited;
  stopReaper();
  const sc = child.signalCode as NodeJS.Signals | number | null;
  const signal = typeof sc === "number" ? (Object.entries(constants.signals).find(([, n]) => n === sc)?.[0] ?? String(sc)) : sc;
  const exit = child.exitCode;
  // In a PID namespace the kernel ends the rest when this process exits; without one, by scan.
  const left = cfg.pidns ? (procIsOurs ? countOthers() : 0) : await killDescendants(process.pid, 2000);
  report({ t: "exit", exit, signal, left });
  return signal ? 128 + ((constants.signals as Record<string, number>)[signal] ?? 0) : (exit ?? 1);
}

/** Blocks until proxywall says go (true), or its end closes because setup failed (false). */
function waitForGo(): boolean {
  const b = new Uint8Array(1);
  for (;;) {
    let n: number;
    try {
      n = readSync(GO_FD, b, 0, 1, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") Bun.sleepSync(1);
      if (code === "EINTR" || code === "EAGAIN") continue;
      return false;
    }
    if (n === 0) return false;
    closeSync(GO_FD);
    return true;
  }
}

/** Live processes in this PID namespace other than this one (its own /proc shows only them). */
function countOthers(): number {
  let n = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const state = statFields(Number(name))?.[0];
    if (state !== undefined && state !== "Z" && state !== "X") n++;
  }
  return n;
}
