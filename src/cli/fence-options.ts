// Options that shape the fence, shared by `run` (which applies it) and `rules` (which prints it),
// so that both build the very same plan from the same words.
import type { ArgsDef } from "citty";
import * as v from "valibot";
import { intOption } from "./argv.ts";

export const fenceArgs = {
  backend: { type: "string", description: "firewall tool: nft, or iptables (iptables-restore + ip6tables-restore); default: nft, or iptables where nft is missing or lacks a feature the plan needs", valueHint: "nft|iptables" },
  "log-rate": { type: "string", description: "log at most this many attempts per second per protocol (the rejects themselves are not limited)", default: "100" },
  "nflog-group": { type: "string", description: "NFLOG group inside the sandbox namespace", default: "1" },
} as const satisfies ArgsDef;

export const FenceOptions = v.object({
  backend: v.optional(v.picklist(["nft", "iptables"], "must be nft or iptables")),
  logRate: intOption(1, 100000),
  nflogGroup: intOption(0, 65535),
});
export type FenceOptions = v.InferOutput<typeof FenceOptions>;

export function fenceInput(args: Record<string, unknown>) {
  return {
    backend: args.backend,
    logRate: args["log-rate"],
    nflogGroup: args["nflog-group"],
  };
}

