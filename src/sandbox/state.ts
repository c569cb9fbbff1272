// Live sandboxes on this host, as files: a state file per sandbox with all its removal needs, and
// a claim file per /30 in use. A claim comes into being with link(2), which fails when the name
// exists, so two proxywalls racing for a subnet cannot both win; /run is tmpfs, so no claim
// outlives a reboot. The owner holds an flock on its claim for as long as it lives: that, not a
// pid, tells whether a sandbox's owner is alive. A pid means nothing from another PID namespace
// (a containerised proxywall and one on the host share /run/proxywall), a lock does.
import { closeSync, constants, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeSync } from "node:fs";
import * as v from "valibot";
import { slotAddresses, type Pool, type SandboxAddresses } from "../plan/addresses.ts";
import { ipv4ToInt } from "../net/ip-address.ts";
import { processStartTime } from "../sys/procfs.ts";
import { tryLock } from "../sys/flock.ts";

export const DEFAULT_STATE_DIR = "/run/proxywall";

/** Who made the sandbox, for people (ls); liveness is the claim's lock. */
const Owner = v.object({ pid: v.pipe(v.number(), v.integer(), v.minValue(1)), start: v.string() });

export const SandboxState = v.object({
  v: v.literal(1),
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{8}$/)),
  owner: Owner,
  created: v.string(),
  netns: v.string(),
  host_if: v.string(),
  sandbox_if: v.string(),
  claim: v.string(),
  host_ipv4: v.string(),
  sandbox_ipv4: v.string(),
  host_ipv6: v.string(),
  sandbox_ipv6: v.string(),
  backend: v.nullable(v.string()),
  proxy_port: v.number(),
  cmd: v.array(v.string()),
});
export type SandboxState = v.InferOutput<typeof SandboxState>;

export function selfOwner(): v.InferOutput<typeof Owner> {
  return { pid: process.pid, start: processStartTime(process.pid) ?? "" };
}

/** Whether the process that claimed `claimPath` still lives (it holds the claim's lock). */
export function claimHeld(claimPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(claimPath, constants.O_RDONLY | O_CLOEXEC);
  } catch {
    return false;
  }
  try {
    return !tryLock(fd);
  } finally {
    closeSync(fd);
  }
}

export function ownerAlive(state: SandboxState): boolean {
  return claimHeld(state.claim);
}

export function ensureStateDir(dir: string): void {
  mkdirSync(`${dir}/claims`, { recursive: true, mode: 0o700 });
}

/**
 * The state dir goes when the last sandbox has: rmdir(2) removes only an empty directory, so a
 * sandbox that lives (its claim, its state file) keeps it, and nothing is left once none does.
 */
export function removeStateDirIfEmpty(dir: string): void {
  for (const d of [`${dir}/claims`, dir]) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}

const statePath = (dir: string, id: string) => `${dir}/${id}.json`;

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

export function removeState(dir: string, id: string): void {
  removeFile(statePath(dir, id));
}

export interface ListedState {
  path: string;
  state: SandboxState | null;
  /** Why the file could not be read as a state, when it could not. */
  problem?: string;
}

export function listStates(dir: string): ListedState[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^[0-9a-f]{8}\.json$/.test(n))
    .map((n) => {
      const path = `${dir}/${n}`;
      try {
        const r = v.safeParse(SandboxState, JSON.parse(readFileSync(path, "utf8")));
        return r.success ? { path, state: r.output } : { path, state: null, problem: r.issues[0].message };
      } catch (e) {
        return { path, state: null, problem: (e as Error).message };
      }
    });
}

export interface Claim {
  path: string;
  addrs: SandboxAddresses;
  /** Open (close-on-exec) and locked for as long as this process owns the subnet. */
  fd: number;
}

const O_CLOEXEC = 0o2000000;

/** Gives up a claim: the name goes first, then the lock. */
export function releaseClaim(claim: Claim): void {
  removeFile(claim.path);
  closeSync(claim.fd);
}

/** A claim file names its owner, so gc can free the subnet of a sandbox that died before its state file was written. */
const ClaimFile = v.object({ id: v.string(), owner: Owner });

/** IPv4 networks that routes on this host already use (a sandbox there would shadow them). */
function hostRoutes(): { net: number; mask: number }[] {
  try {
    return readFileSync("/proc/net/route", "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 8 && f[0] !== "lo")
      .map((f) => {
        // The file prints addresses as little-endian hex.
        const le = (h: string) => (parseInt(h.slice(6, 8) + h.slice(4, 6) + h.slice(2, 4) + h.slice(0, 2), 16) >>> 0);
        return { net: le(f[1]!), mask: le(f[7]!) };
      })
      .filter((r) => r.mask !== 0);
  } catch {
    return [];
  }
}

export function claimSlot(dir: string, pool: Pool, id: string): Claim | null {
  const routes = hostRoutes();
  // Written and locked under a private name first, then linked into place: a claim is never seen
  // unlocked or half-written.
  const tmp = `${dir}/claims/.${id}`;
  const open = () => openSync(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | O_CLOEXEC, 0o600);
  let fd: number;
  try {
    fd = open();
  } catch (e) {
    // The last other sandbox's teardown may have removed the empty dirs just now.
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    ensureStateDir(dir);
    fd = open();
  }
  try {
    if (!tryLock(fd)) throw new Error(`cannot lock ${tmp}`);
    writeSync(fd, JSON.stringify({ id, owner: selfOwner() }));
    for (let slot = 0; slot < pool.slots; slot++) {
      const addrs = slotAddresses(pool, slot);
      const net = ipv4ToInt(addrs.hostV4) - 1;
      if (routes.some((r) => ((net & r.mask) >>> 0 === r.net || ((r.net & 0xfffffffc) >>> 0) === net))) continue;
      const path = `${dir}/claims/${addrs.hostV4.replace(/\.\d+$/, `.${net & 255}`)}`;
      try {
        linkSync(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
        throw e;
      }
      return { path, addrs, fd };
    }
    closeSync(fd);
    return null;
  } catch (e) {
    closeSync(fd);
    throw e;
  } finally {
    removeFile(tmp);
  }
}

export interface ListedClaim {
  path: string;
  id: string | null;
  alive: boolean;
}

export function listClaims(dir: string): ListedClaim[] {
  let names: string[];
  try {
    names = readdirSync(`${dir}/claims`);
  } catch {
    return [];
  }
  return names.filter((n) => !n.startsWith(".")).map((n) => {
    const path = `${dir}/claims/${n}`;
    const alive = claimHeld(path);
    try {
      return { path, id: v.parse(ClaimFile, JSON.parse(readFileSync(path, "utf8"))).id, alive };
    } catch {
      return { path, id: null, alive };
    }
  });
}
