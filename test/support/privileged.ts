// Shared ground for tests that need root and the real kernel: a gate that fails (in CI) or skips
// (elsewhere) when namespaces cannot be made, a snapshot of host state to prove nothing was left
// behind, and a way to run proxywall from source and collect its event lines.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { proxywall } from "./cli.ts";

export { eventsOf, splitStderr, type Event } from "./events.ts";

export { MAIN, proxywall, ROOT, type Run } from "./cli.ts";
/** Tests use their own state dir, so they never touch a developer's live sandboxes. */
export const TEST_STATE_DIR = "/run/proxywall-test";
export const TEST_ARGS = ["--state-dir", TEST_STATE_DIR];

function canMakeNamespace(): boolean {
  if (process.getuid?.() !== 0) return false;
  const name = `pwprobe${process.pid}`;
  const add = Bun.spawnSync(["ip", "netns", "add", name]);
  if (add.exitCode !== 0) return false;
  Bun.spawnSync(["ip", "netns", "del", name]);
  return true;
}

export const PRIVILEGED = canMakeNamespace();

/**
 * describe() for privileged tests. In CI (CI set) a machine that cannot make namespaces is a
 * failure, not a reason to skip; elsewhere the tests are skipped with a note.
 */
export function describePrivileged(name: string, fn: () => void): void {
  // Real namespaces and real clients take longer than bun's 5 s default on a loaded machine.
  setDefaultTimeout(60_000);
  if (PRIVILEGED) {
    return describe(name, () => {
      fn();
      // Whatever a failed test left behind (its proxywall killed mid-run) is removed here.
      afterAll(async () => {
        await proxywall(["gc", "--state-dir", TEST_STATE_DIR]);
      });
    });
  }
  if (process.env.CI) {
    return describe(name, () => {
      test("can create a network namespace (required in CI)", () => {
        expect(PRIVILEGED as boolean).toBe(true);
      });
    });
  }
  describe.skip(`${name} (needs root and network namespaces)`, fn);
}

export interface HostSnapshot {
  netns: string[];
  links: string[];
  state: string[];
  nftTables: string;
}

/**
 * What proxywall could leave on the host: its namespaces (pw-ID), links (pwhID, pwsID), nft
 * tables and state files. Names of other shapes are left out, so that other work on the same
 * machine (another developer's namespaces) does not make the comparison fail.
 */
export function hostSnapshot(): HostSnapshot {
  const out = (cmd: string[]) => Bun.spawnSync(cmd).stdout.toString();
  const listDir = (d: string): string[] =>
    existsSync(d) ? readdirSync(d, { recursive: true }).map(String).sort() : [];
  return {
    netns: out(["ip", "netns", "list"]).split("\n").map((l) => l.split(" ")[0]!).filter((n) => /^pw-[0-9a-f]{8}$/.test(n)).sort(),
    links: out(["ip", "-o", "link"]).split("\n").map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "").filter((n) => /^pw[hs][0-9a-f]{8}$/.test(n)).sort(),
    state: listDir(TEST_STATE_DIR),
    nftTables: out(["nft", "list", "tables"]),
  };
}

