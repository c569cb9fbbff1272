// Live sandboxes on this host, as files: per sandbox a state file with what its removal needs and
// what `ls` shows, and a lock file. The owner holds an flock on its lock file for as long as it
// lives: that, not a pid, tells whether a sandbox's owner is alive. A pid means nothing from
// another PID namespace (a containerised proxywall and one on the host share /run/proxywall); a
// lock does, and the kernel drops it when the owner dies, even by SIGKILL. The lock file is made
// and locked before anything else exists, so gc never takes a sandbox that is being built for a
// dead one. /run is tmpfs: nothing here outlives a reboot.
import { closeSync, constants, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeSync } from "node:fs";
import * as v from "valibot";
import { ID_PATTERN } from "../plan/addresses.ts";
import { processStartTime } from "../sys/procfs.ts";
import { tryLock } from "../sys/flock.ts";
import { SandboxReady } from "../events/schema.ts";

export const DEFAULT_STATE_DIR = "/run/proxywall";

/** Who made the sandbox, for people (ls); liveness is the lock. */
const Owner = v.object({ pid: v.pipe(v.number(), v.integer(), v.minValue(1)), start: v.string() });

export const SandboxState = v.object({
  v: v.literal(2),
  id: v.pipe(v.string(), v.regex(ID_PATTERN)),
  owner: Owner,
  created: v.string(),
  netns: v.string(),
  cmd: v.array(v.string()),
  /** The sandbox_ready line, once it is written: what was built (backend, proxy, degraded parts). */
  ready: v.nullable(SandboxReady),
});
export type SandboxState = v.InferOutput<typeof SandboxState>;

export function selfOwner(): v.InferOutput<typeof Owner> {
  return { pid: process.pid, start: processStartTime(process.pid) ?? "" };
}

const O_CLOEXEC = 0o2000000;
const statePath = (dir: string, id: string) => `${dir}/${id}.json`;
const lockPath = (dir: string, id: string) => `${dir}/${id}.lock`;

/** Whether the owner of sandbox `id` still lives (it holds the lock). */
export function ownerAlive(dir: string, id: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath(dir, id), constants.O_RDONLY | O_CLOEXEC);
  } catch {
    return false;
  }
  try {
    return !tryLock(fd);
  } finally {
    closeSync(fd);
  }
}

/** This process's hold on a sandbox id: the open, locked lock file. */
export interface Hold {
  dir: string;
  id: string;
  fd: number;
}

/** Makes and locks the lock file of a new sandbox; throws when the state dir cannot be written. */
export function holdSandbox(dir: string, id: string): Hold {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Made and locked under a name gc does not list, then linked into place (link(2) fails when the
  // name exists): another proxywall's gc never sees the lock file unlocked, so it cannot take a
  // sandbox being built for a dead one (it did: 10 at once, one lost its namespace).
  const tmp = `${dir}/.${id}.lock`;
  const fd = openSync(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | O_CLOEXEC, 0o600);
  try {
    if (!tryLock(fd)) throw new Error(`cannot lock ${tmp}`);
    linkSync(tmp, lockPath(dir, id));
  } catch (e) {
    closeSync(fd);
    throw e;
  } finally {
    removeFile(tmp);
  }
  return { dir, id, fd };
}

/** Gives the sandbox up: state file and lock file go, then the lock, then the dir if it is empty. */
export function releaseSandbox(hold: Hold): void {
  removeFile(statePath(hold.dir, hold.id));
  removeFile(lockPath(hold.dir, hold.id));
  closeSync(hold.fd);
  removeStateDirIfEmpty(hold.dir);
}

/** Removes what a dead owner left: its state and lock files. */
export function forgetSandbox(dir: string, id: string): void {
  removeFile(statePath(dir, id));
  removeFile(lockPath(dir, id));
}

/**
 * The state dir goes when the last sandbox has: rmdir(2) removes only an empty directory, so a
 * sandbox that lives keeps it, and nothing is left once none does.
 */
export function removeStateDirIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {}
}

/** Written whole under a temporary name, then renamed: a reader never sees half a file. */
export function writeState(dir: string, state: SandboxState): void {
  const tmp = `${statePath(dir, state.id)}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify(state) + "\n");
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, statePath(dir, state.id));
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

export interface ListedSandbox {
  id: string;
  path: string;
  /** The state, when the file could be read as one (an owner that died early may have none). */
  state: SandboxState | null;
  alive: boolean;
  /** Why the file could not be read as a state, when it could not. */
  problem?: string;
}

/** Every sandbox the dir knows of: by state file or by lock file. */
export function listSandboxes(dir: string): ListedSandbox[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const ids = new Set(names.map((n) => /^([0-9a-f]{8})\.(json|lock)$/.exec(n)?.[1]).filter((id): id is string => id !== undefined));
  return [...ids].sort().map((id) => {
    const path = statePath(dir, id);
    const alive = ownerAlive(dir, id);
    if (!names.includes(`${id}.json`)) return { id, path, state: null, alive, problem: "no state file" };
    try {
      const r = v.safeParse(SandboxState, JSON.parse(readFileSync(path, "utf8")));
      return r.success ? { id, path, state: r.output, alive } : { id, path, state: null, alive, problem: r.issues[0].message };
    } catch (e) {
      return { id, path, state: null, alive, problem: (e as Error).message };
    }
  });
}
