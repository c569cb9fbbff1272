// Running CMD inside the sandbox and waiting for it, like tini: the signals proxywall gets are
// passed on, and its exit status is CMD's (128+N when a signal N ended it).
//
// CMD is started by its init (init.ts: proxywall itself, started again inside the sandbox's
// network namespace and, where the kernel allows, as PID 1 of a new PID namespace), which drops
// what CMD must not have and reports on a pipe: CMD started (its pid there), CMD could not be
// executed, CMD's status. Killing the init ends every process of the PID namespace at once.
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { diag } from "../diag.ts";
import { proxyEnv } from "../plan/sandbox-plan.ts";
import { inNetns } from "../sys/netns.ts";
import { inNewPidNamespace } from "../sys/pidns.ts";
import { statFields } from "../sys/procfs.ts";
import { statusNsPid } from "../monitor/process-info.ts";
import { INIT_ENV, type InitConfig, type InitMessage } from "./init-protocol.ts";
import { closeSync, writeSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, libc } from "../sys/libc.ts";
import { signalExit, type Setup } from "./setup.ts";

export { FORWARDED_SIGNALS } from "./init-protocol.ts";

export interface CmdResult {
  code: number;
  exit: number | null;
  signal: string | null;
}

export interface CmdOptions {
  cmd: string[];
  nsPath: string;
  proxyUrl: string;
  user: { uid: number; gid: number } | null;
  keepCaps: boolean;
  families: number[];
  degrade: Setup["degrade"];
}

/** How long teardown waits for the init after SIGKILL (the kernel ends its namespace first). */
const END_WAIT_MS = 3000;

export class CmdRun {
  /** CMD's pid as proxywall sees it, once it runs; null when it never started. */
  readonly started: Promise<number | null>;
  readonly done: Promise<CmdResult>;
  private init: Bun.Subprocess | null = null;
  private cmdRunning = false;
  /** proxywall's end of the go pipe, until go() (or end()) closes it. */
  private goFd: number | null = null;
  /** go() was called: from now on a signal is CMD's, not a reason to stop setup. */
  released = false;
  private readonly pending: NodeJS.Signals[] = [];

  constructor(private readonly o: CmdOptions) {
    let pidns = true;
    try {
      const spawned = inNetns(o.nsPath, () => inNewPidNamespace(() => this.spawnInit(true)));
      if ("errno" in spawned) {
        pidns = false;
        o.degrade(
          "pid-namespace",
          `a PID namespace cannot be made here (unshare(CLONE_NEWPID): errno ${spawned.errno}): CMD sees the processes of proxywall's PID namespace`,
          "allow unshare(CLONE_NEWPID) to proxywall (CAP_SYS_ADMIN; a seccomp profile that permits unshare)",
          "when CMD exits, its descendants and every process in the sandbox's network namespace are ended by scan (for at most 2 s)",
        );
        this.init = inNetns(o.nsPath, () => this.spawnInit(false));
      } else this.init = spawned.value;
    } catch (e) {
      diag.error(`cannot start CMD's init: ${(e as Error).message}`);
    }
    const init = this.init;
    const fd = init?.stdio[3];
    if (!init || typeof fd !== "number") {
      this.started = Promise.resolve(null);
      this.done = Promise.resolve({ code: 126, exit: null, signal: null });
      return;
    }
    const messages = readMessages(fd);
    this.started = this.waitStarted(init, messages, pidns);
    this.done = this.started.then(() => this.waitDone(init, messages));
  }

  /** The init's pid (proxywall's own child). */
  get pid(): number | null {
    return this.init?.pid ?? null;
  }

  running(): boolean {
    return this.init !== null && this.init.exitCode === null && this.init.signalCode === null;
  }

  /** Passes a signal on to CMD (through its init); one that comes before CMD runs waits for it. */
  kill(sig: NodeJS.Signals): void {
    if (!this.running()) return;
    if (this.cmdRunning) this.init!.kill(sig);
    else this.pending.push(sig);
  }

  /** Lets the init run CMD (after sandbox_ready); until then it has prepared and waits. */
  go(): void {
    this.released = true;
    if (this.goFd === null) return;
    try {
      writeSync(this.goFd, "g");
    } catch {}
    this.closeGo();
  }

  private closeGo(): void {
    if (this.goFd !== null) closeSync(this.goFd);
    this.goFd = null;
  }

  /** Teardown: ends the init, and with it every process of its PID namespace. */
  async end(): Promise<void> {
    // Setup failed before go: end of file tells a waiting init to exit.
    this.closeGo();
    if (!this.init || !this.running()) return;
    this.init.kill("SIGKILL");
    await Promise.race([this.init.exited, Bun.sleep(END_WAIT_MS)]);
  }

  private spawnInit(pidns: boolean): Bun.Subprocess {
    const cfg: InitConfig = { pidns, user: this.o.user ? { ...this.o.user, groups: supplementaryGroups(this.o.user) } : null, keepCaps: this.o.keepCaps, families: this.o.families };
    const [goRead, goWrite] = goPipe();
    try {
      const init = Bun.spawn(initArgv(this.o.cmd), {
        env: { ...proxyEnv(process.env, this.o.proxyUrl), [INIT_ENV]: JSON.stringify(cfg) },
        stdio: ["inherit", "inherit", "inherit", "pipe", goRead],
      });
      this.goFd = goWrite;
      return init;
    } catch (e) {
      closeSync(goWrite);
      throw e;
    } finally {
      closeSync(goRead);
    }
  }

  private async waitStarted(init: Bun.Subprocess, messages: AsyncIterator<InitMessage>, pidns: boolean): Promise<number | null> {
    for (;;) {
      const { value: m, done } = await messages.next();
      if (done) return null;
      if (m.t === "degraded" && m.what === "bounding") {
        this.o.degrade(
          "privileges",
          `CMD's bounding set cannot be narrowed (${m.why}): /proc/self/status shows capabilities CMD cannot use`,
          "give proxywall CAP_SETPCAP",
          "CMD holds none of the dropped capabilities, and no_new_privs keeps exec (setuid programs, file capabilities) from granting any",
        );
      } else if (m.t === "degraded") {
        this.o.degrade(
          "pid-namespace",
          `no /proc can be mounted for CMD's PID namespace (${m.why}): CMD sees proxywall's /proc, whose pids are not its own`,
          "run proxywall where it may mount proc (rootless runtimes that lock /proc do not allow it)",
          "CMD and everything it starts still end with it (PID namespace)",
        );
      } else if (m.t === "failed") {
        diag.error(`cannot run ${this.o.cmd[0]}: ${m.why}`);
        return null;
      } else if (m.t === "started") {
        this.cmdRunning = true;
        for (const sig of this.pending.splice(0)) init.kill(sig);
        return pidns ? (childWithNsPid(init.pid, m.pid) ?? init.pid) : m.pid;
      }
    }
  }

  private async waitDone(init: Bun.Subprocess, messages: AsyncIterator<InitMessage>): Promise<CmdResult> {
    let exit: Extract<InitMessage, { t: "exit" }> | null = null;
    let failed: Extract<InitMessage, { t: "failed" }> | null = null;
    for (;;) {
      const { value: m, done } = await messages.next();
      if (done) break;
      if (m.t === "exit") exit = m;
      if (m.t === "failed") failed = m;
    }
    await init.exited;
    if (failed) return { code: failed.code, exit: null, signal: null };
    if (exit) {
      if (exit.left > 0) diag.info(`ended ${exit.left} process${exit.left === 1 ? "" : "es"} CMD left running in the sandbox`);
      return { code: exit.signal ? signalExit(exit.signal) : (exit.exit ?? 1), exit: exit.exit, signal: exit.signal };
    }
    // The init itself was ended (teardown after a signal to proxywall during setup, an OOM kill).
    const sc = init.signalCode as NodeJS.Signals | number | null;
    const sig = typeof sc === "number" ? (Object.entries(constants.signals).find(([, n]) => n === sc)?.[0] ?? null) : sc;
    // Before go, teardown ended it (setup failed, and said why): nothing more to say.
    if (!this.cmdRunning && this.released) diag.error(`CMD's init ended before CMD started (${sig ?? `exit ${init.exitCode}`})`);
    return { code: sig ? signalExit(sig) : (init.exitCode ?? 1), exit: sig ? null : init.exitCode, signal: sig };
  }
}

/** A close-on-exec pipe: the init gets the read end as its fd 4 (Bun dups it there), proxywall keeps the write end. */
function goPipe(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().pipe2(ptr(fds), 0o2000000 /* O_CLOEXEC */) !== 0) throw new Error(`pipe2 failed: errno ${errno()}`);
  return [fds[0]!, fds[1]!];
}

/** proxywall again, with CMD as its arguments (the compiled binary takes only the user's). */
function initArgv(cmd: string[]): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, ...cmd] : [process.execPath, ...process.execArgv, Bun.main, ...cmd];
}

/** The init's report lines, parsed, until it closes its end. */
async function* readMessages(fd: number): AsyncGenerator<InitMessage> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.file(fd).stream()) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        yield JSON.parse(line) as InitMessage;
      } catch {}
    }
  }
}

/** The child of `parent` whose pid in its own namespace is `nsPid` (CMD, seen from outside). */
function childWithNsPid(parent: number, nsPid: number): number | null {
  let kids: number[];
  try {
    kids = readFileSync(`/proc/${parent}/task/${parent}/children`, "latin1").trim().split(" ").filter(Boolean).map(Number);
  } catch {
    // Kernels without CONFIG_PROC_CHILDREN: every process whose parent it is.
    kids = readdirSync("/proc").filter((n) => /^\d+$/.test(n) && statFields(Number(n))?.[1] === String(parent)).map(Number);
  }
  return kids.find((pid) => statusNsPid(pid) === nsPid) ?? null;
}

/** --user's groups: its gid, and the groups /etc/group lists its name in (what initgroups does). */
export function supplementaryGroups(user: { uid: number; gid: number }, passwd = "/etc/passwd", group = "/etc/group"): number[] {
  const rows = (path: string) => {
    try {
      return readFileSync(path, "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(":"));
    } catch {
      return [];
    }
  };
  const name = rows(passwd).find((r) => r[2] === String(user.uid))?.[0];
  const groups = new Set([user.gid]);
  if (name) for (const r of rows(group)) if ((r[3] ?? "").split(",").includes(name) && /^\d+$/.test(r[2] ?? "")) groups.add(Number(r[2]));
  return [...groups];
}
