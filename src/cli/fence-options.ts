// Options that shape the fence, shared by `run` (which applies it) and `rules` (which prints it),
// so that both build the very same plan from the same words.
import type { ArgsDef } from "citty";
import * as v from "valibot";
import { DEFAULT_POOL, parsePool, type Pool } from "../plan/addresses.ts";
import { HOLD_QUEUE, type HoldQueue, type LogTarget } from "../plan/ruleset.ts";
import { intOption } from "./argv.ts";

export const fenceArgs = {
  "proxy-port": { type: "string", description: "port of the proxy on the host side of the sandbox", default: "3128" },
  backend: { type: "string", description: "firewall tool: nft, or iptables (iptables-restore + ip6tables-restore); default: nft, or iptables where nft is missing or lacks a feature the plan needs", valueHint: "nft|iptables" },
  "log-rate": { type: "string", description: "log at most this many attempts per second per protocol (the rejects themselves are not limited)", default: "100" },
  "nflog-group": { type: "string", description: "NFLOG group inside the sandbox namespace", default: "1" },
  pool: { type: "string", description: "IPv4 range that sandbox /30 subnets are taken from", default: DEFAULT_POOL },
} as const satisfies ArgsDef;

export const FenceOptions = v.object({
  proxyPort: intOption(1, 65535),
  backend: v.optional(v.picklist(["nft", "iptables"], "must be nft or iptables")),
  logRate: intOption(1, 100000),
  nflogGroup: intOption(0, 65535),
  pool: v.pipe(
    v.string(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const pool = parsePool(dataset.value);
      if (typeof pool === "string") {
        addIssue({ message: pool });
        return NEVER;
      }
      return pool;
    }),
  ),
});

export type FenceOptions = v.InferOutput<typeof FenceOptions>;

export function fenceInput(args: Record<string, unknown>) {
  return {
    proxyPort: args["proxy-port"],
    backend: args.backend,
    logRate: args["log-rate"],
    nflogGroup: args["nflog-group"],
    pool: args.pool,
  };
}

export type LogKind = "nflog" | "kmsg" | "none";

/** The log step for a kind of log; NFLOG comes with holding TCP SYNs for attribution. */
export function watchRules(kind: LogKind, nflogGroup: number, prefix: string): { log: LogTarget; hold: HoldQueue | null } {
  if (kind === "nflog") return { log: { kind: "nflog", group: nflogGroup, prefix }, hold: HOLD_QUEUE };
  if (kind === "kmsg") return { log: { kind: "kmsg", prefix }, hold: null };
  return { log: { kind: "none" }, hold: null };
}

export type { Pool };
