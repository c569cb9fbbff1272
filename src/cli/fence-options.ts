// Options shared between commands, so that each is spelled, checked and described once: what shapes
// the fence (`run` applies it, `rules` prints it, `monitor` logs with it) and where the watch's
// lines go (`run`, `monitor`).
import type { ArgsDef } from "citty";
import * as v from "valibot";
import { intOption } from "./argv.ts";
import { OutputFormatOption } from "../events/formats/index.ts";

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


/** How each event line is written (`run`, `monitor`, `parse`, `schema`). */
export const eventFormatArg = { type: "string", description: "json (proxywall's own lines), ocsf (OCSF 1.8.0) or ecs (Elastic Common Schema)", default: "json", valueHint: "json|ocsf|ecs" } as const;

/** Where the event lines go, in which format, and how often summaries come (`run` and `monitor`). */
export const watchArgs = {
  events: { type: "string", description: "where JSON event lines go: a file (appended) or fd:N (default: run stderr, monitor stdout)", valueHint: "PATH|fd:N" },
  "summary-interval": { type: "string", description: "seconds between bypass_summary lines (0: only at exit)", default: "10" },
  "event-format": { type: "string", description: "json, ocsf, ecs, or human (short lines for a person); default: human when the lines go to a terminal, else json", valueHint: "json|ocsf|ecs|human" },
} as const satisfies ArgsDef;

export const WatchOptions = v.object({
  events: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"), v.maxLength(4096, "is too long"))),
  summaryInterval: intOption(0, 86400),
  eventFormat: OutputFormatOption,
});

export function watchInput(args: Record<string, unknown>) {
  return { events: args.events, summaryInterval: args["summary-interval"], eventFormat: args["event-format"] };
}
