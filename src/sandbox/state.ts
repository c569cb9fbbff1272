// Live sandboxes on this host, as files: a state file per sandbox with all its removal needs, and
// a claim file per /30 in use. A claim is created with O_EXCL, so two proxywalls racing for a
// subnet cannot both win: the file system is the lock, and it outlives no reboot (/run is tmpfs).
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { release } from "node:os";
import type { FeatureMemo } from "./apply.ts";
import type { Features } from "../plan/ruleset.ts";
import * as v from "valibot";
import { slotAddresses, type Pool, type SandboxAddresses } from "../plan/addresses.ts";
import { ipv4ToInt } from "../net/ip-address.ts";
import { processStartTime, sameProcessAlive } from "../sys/procfs.ts";

export const DEFAULT_STATE_DIR = "/run/proxywall";

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

export function ownerAlive(owner: v.InferOutput<typeof Owner>): boolean {
  return sameProcessAlive(owner.pid, owner.start);
}

export function ensureStateDir(dir: string): void {
  mkdirSync(`${dir}/claims`, { recursive: true, mode: 0o700 });
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
  const owner = JSON.stringify({ id, owner: selfOwner() });
  for (let slot = 0; slot < pool.slots; slot++) {
    const addrs = slotAddresses(pool, slot);
    const net = ipv4ToInt(addrs.hostV4) - 1;
    if (routes.some((r) => ((net & r.mask) >>> 0 === r.net || ((r.net & 0xfffffffc) >>> 0) === net))) continue;
    const path = `${dir}/claims/${addrs.hostV4.replace(/\.\d+$/, `.${net & 255}`)}`;
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw e;
    }
    try {
      writeSync(fd, owner);
    } finally {
      closeSync(fd);
    }
    return { path, addrs };
  }
  return null;
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
  return names.map((n) => {
    const path = `${dir}/claims/${n}`;
    try {
      const c = v.parse(ClaimFile, JSON.parse(readFileSync(path, "utf8")));
      return { path, id: c.id, alive: ownerAlive(c.owner) };
    } catch {
      // Unreadable: its owner is between create and write (microseconds), or died right there.
      let young = false;
      try {
        young = Date.now() - statSync(path).mtimeMs < 60_000;
      } catch {}
      return { path, id: null, alive: young };
    }
  });
}

/**
 * Which optional fence features each backend lacked on this boot, so later runs try the best
 * backend first. Keyed by kernel release: a reboot into another kernel starts afresh (and /run
 * is emptied at boot anyway). Only an ordering hint: a backend is still tried and probed.
 */
export function featureMemo(dir: string): FeatureMemo {
  const path = `${dir}/features.json`;
  const Memo = v.object({ kernel: v.string(), missing: v.record(v.string(), v.array(v.string())) });
  let data: v.InferOutput<typeof Memo> = { kernel: release(), missing: {} };
  try {
    const parsed = v.parse(Memo, JSON.parse(readFileSync(path, "utf8")));
    if (parsed.kernel === data.kernel) data = parsed;
  } catch {}
  return {
    missing: (backend) => data.missing[backend] as (keyof Features)[] | undefined,
    record(backend, missing) {
      data.missing[backend] = [...missing];
      try {
        const tmp = `${path}.${process.pid}`;
        writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
        renameSync(tmp, path);
      } catch {}
    },
  };
}
