// The doctor's scratch namespace: made as a sandbox's is (a named namespace, a veth pair kept
// wholly inside it), and removed on every way out, signals included. Only what doctor created
// itself is removed, never a same-named stranger.
import { existsSync } from "node:fs";
import { netnsPath } from "../sys/netns.ts";
import type { ToolResult } from "../sys/tools.ts";
import { run } from "./report.ts";

export interface Scratch {
  netns: string;
}

export interface ScratchSteps {
  netns: ToolResult | null;
  veth: ToolResult | null;
}

export function scratchName(): Scratch {
  for (;;) {
    const id = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("");
    const s = { netns: `pwdoc-${id}` };
    if (!existsSync(netnsPath(s.netns))) return s;
  }
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

/**
 * Runs `fn` with a scratch namespace and veth pair (as far as they could be made) and removes the
 * namespace afterwards (its links go with it), on return, on a throw and on SIGINT/SIGTERM/
 * SIGHUP/SIGQUIT. `cleanup` tells the caller what was made and what is left.
 */
export async function withScratch<T>(ip: string, cleanup: { scratch: Scratch | null; left: string[] }, fn: (s: Scratch, steps: ScratchSteps) => Promise<T>): Promise<T> {
  const s = scratchName();
  cleanup.scratch = s;
  let made = false;
  const steps: ScratchSteps = { netns: null, veth: null };
  const onSignal = (sig: (typeof SIGNALS)[number]) => () => {
    // Synchronous on purpose: nothing else runs before the process ends.
    if (made) Bun.spawnSync([ip, "netns", "del", s.netns], { stdout: "ignore", stderr: "ignore" });
    process.exit(128 + SIGNAL_NUMBERS[sig]);
  };
  const handlers = SIGNALS.map((sig) => [sig, onSignal(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    // Marked before the attempt: an interrupted `netns add` may still have made it.
    made = true;
    steps.netns = await run(ip, ["netns", "add", s.netns]);
    if (steps.netns.code !== 0) made = existsSync(netnsPath(s.netns)) && steps.netns.code === -1;
    if (steps.netns.code === 0) steps.veth = await run(ip, ["-n", s.netns, "link", "add", "pw0", "type", "veth", "peer", "name", "pw1"]);
    return await fn(s, steps);
  } finally {
    if (made) await run(ip, ["netns", "del", s.netns]);
    cleanup.left = made && existsSync(netnsPath(s.netns)) ? [`namespace ${s.netns}`] : [];
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}
