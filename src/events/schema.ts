// The one source of truth for every JSON line proxywall writes. `proxywall schema` prints the JSON
// Schema generated from these definitions; tests validate real output against them.
import * as v from "valibot";

const Timestamp = v.pipe(
  v.string(),
  v.regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
  v.description("RFC 3339 time in UTC with milliseconds, when proxywall wrote the line"),
);
const Port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const Id = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(4294967295));
const SandboxId = v.pipe(
  v.string(),
  v.minLength(1),
  v.description("sandbox id (8 hex digits), or the log prefix a record carried when it is not proxywall's"),
);

function event<const E extends string, const T extends v.ObjectEntries>(name: E, description: string, entries: T) {
  return v.pipe(
    v.strictObject({
      v: v.literal(1),
      event: v.literal(name),
      ts: Timestamp,
      sandbox: SandboxId,
      ...entries,
    }),
    v.description(description),
  );
}

export const Proto = v.picklist(["tcp", "udp"]);
export const Family = v.picklist(["ipv4", "ipv6"]);
export const Source = v.picklist(["nflog", "kmsg", "dmesg", "parse"]);

export const BypassDetect = event("bypass_detect", "A connection attempt that went around the proxy and was rejected", {
  action: v.literal("reject"),
  proto: Proto,
  family: Family,
  src_addr: v.nullable(v.string()),
  src_port: v.nullable(Port),
  dst_addr: v.string(),
  dst_port: Port,
  uid: v.nullable(Id),
  gid: v.nullable(Id),
  out_if: v.nullable(v.string()),
  process: v.null(),
  reason: v.literal("direct connection bypassed HTTP CONNECT proxy"),
  hint: v.string(),
  source: Source,
  log_time: v.pipe(
    v.nullable(v.string()),
    v.description("the kernel record's own timestamp as found (seconds since boot, or a syslog date), if any"),
  ),
});

export const Degraded = event("degraded", "A part of the sandbox that does not work, what is missing, and what still protects", {
  component: v.string(),
  missing: v.string(),
  fix: v.string(),
  still_protected: v.string(),
});

export const EventLine = v.variant("event", [BypassDetect, Degraded]);

export type BypassDetect = v.InferOutput<typeof BypassDetect>;
export type Degraded = v.InferOutput<typeof Degraded>;
export type EventLine = v.InferOutput<typeof EventLine>;
export type Proto = v.InferOutput<typeof Proto>;
export type Family = v.InferOutput<typeof Family>;
export type Source = v.InferOutput<typeof Source>;

export const REASON_BYPASS = "direct connection bypassed HTTP CONNECT proxy" as const;
