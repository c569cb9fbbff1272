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

export const Proto = v.pipe(
  v.union([
    v.picklist(["tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "igmp", "gre", "esp", "ah"]),
    v.pipe(v.string(), v.regex(/^ip-\d{1,3}$/)),
  ]),
  v.description('the transport protocol: tcp, udp, udplite, sctp, dccp, icmp, icmpv6, igmp, gre, esp, ah, or "ip-N" for protocol number N'),
);
export const Family = v.picklist(["ipv4", "ipv6"]);
export const Source = v.pipe(
  v.picklist(["nfqueue", "nflog", "dns", "kmsg", "dmesg", "parse"]),
  v.description("where proxywall saw the attempt: a held packet (nfqueue), a packet log (nflog), a query its DNS responder answered REFUSED (dns), the kernel log (kmsg, dmesg) or offline text (parse)"),
);

const Pid = v.pipe(v.number(), v.integer(), v.minValue(1));

const ProcessFacts = {
  pid: Pid,
  exe: v.pipe(v.nullable(v.string()), v.description("/proc/PID/exe; may end in \" (deleted)\"")),
  cmdline: v.array(v.string()),
  uid: v.nullable(Id),
  start_time: v.pipe(v.nullable(v.string()), v.description("when the process started, RFC 3339 UTC")),
  ns_pid: v.pipe(
    v.optional(v.nullable(Pid)),
    v.description("the pid CMD's own processes see (in the sandbox's PID namespace); pid is proxywall's view. Null where unknown; absent in lines of versions before it"),
  ),
};

export const ResolvedProcess = v.strictObject({
  resolved: v.literal(true),
  ...ProcessFacts,
  ancestors: v.pipe(v.array(v.strictObject({ pid: Pid, exe: v.nullable(v.string()) })), v.description("parents, nearest first, up to CMD")),
  also_held_by: v.pipe(
    v.array(v.strictObject(ProcessFacts)),
    v.description("other processes with the same socket open (it was shared by fork or fd passing)"),
  ),
});

export const UnresolvedProcess = v.strictObject({
  resolved: v.literal(false),
  why: v.string(),
});

export const ProcessInfo = v.pipe(
  v.nullable(v.variant("resolved", [ResolvedProcess, UnresolvedProcess])),
  v.description("the process that made the attempt; null where attribution is not attempted (parse)"),
);

export const BypassDetect = event("bypass_detect", "A connection attempt that went around the proxy and was rejected", {
  action: v.pipe(
    v.picklist(["reject", "observe", "unfenced"]),
    v.description(
      "reject: the sandbox's fence refused it; observe: proxywall monitor saw it in a namespace whose rules it does not own; unfenced: seen after the sandbox's fence was changed (a degraded line with component fence says how), so it may not have been refused",
    ),
  ),
  proto: Proto,
  family: Family,
  src_addr: v.nullable(v.string()),
  src_port: v.nullable(Port),
  dst_addr: v.string(),
  dst_port: v.pipe(Port, v.description("0 for protocols without ports (icmp, icmpv6 and the like)")),
  uid: v.nullable(Id),
  gid: v.nullable(Id),
  out_if: v.nullable(v.string()),
  process: ProcessInfo,
  dns_query: v.pipe(v.nullable(v.string()), v.description("for DNS (port 53): the name the program tried to resolve, when the packet shows it")),
  dns_type: v.pipe(
    v.optional(v.nullable(v.string())),
    v.description('for DNS: the query type ("A", "AAAA", "HTTPS", "TYPE65534"), when the packet shows it; absent where the source cannot show it (the kernel log, parse) and in lines of earlier versions'),
  ),
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

export const BypassSummary = event("bypass_summary", "Bypass attempts so far for one (proto, destination, executable), every --summary-interval and at exit", {
  proto: Proto,
  dst_addr: v.string(),
  dst_port: Port,
  exe: v.nullable(v.string()),
  count: v.pipe(v.number(), v.integer(), v.minValue(1)),
  first_seen: Timestamp,
  last_seen: Timestamp,
  final: v.pipe(v.boolean(), v.description("true for the summary written at exit")),
});

const Counter = v.pipe(
  v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
  v.description("null when the counters could not be read, or the fence was changed (they are then not the installed fence's)"),
);

export const BypassTotals = event("bypass_totals", "Rejected packets per protocol, read from the kernel's rule counters: exact even where the log rate limit dropped events", {
  tcp: Counter,
  udp: Counter,
  other: Counter,
  events: v.pipe(v.number(), v.integer(), v.description("bypass_detect lines written so far")),
  lost: v.pipe(v.number(), v.integer(), v.description("packet messages the kernel dropped because proxywall fell behind (ENOBUFS)")),
  final: v.boolean(),
});

export const Backend = v.picklist(["nft", "iptables"]);
export const LogKind = v.picklist(["nflog", "kmsg", "none"]);

export const SandboxReady = event("sandbox_ready", "The sandbox is built and fenced; CMD starts next", {
  netns: v.pipe(v.string(), v.description("the sandbox's network namespace (/run/netns/NAME); it has no host side")),
  sandbox_ipv4: v.pipe(v.string(), v.description("CMD's own address inside the sandbox, the same in every sandbox")),
  sandbox_ipv6: v.pipe(v.nullable(v.string()), v.description("null where the sandbox has no IPv6 (a degraded line says why, when it matters)")),
  proxy: v.strictObject({
    url: v.pipe(v.string(), v.description("the URL CMD finds in HTTP_PROXY/HTTPS_PROXY")),
    port: Port,
    builtin: v.pipe(v.boolean(), v.description("false when --external-proxy names the user's own proxy")),
  }),
  backend: v.nullable(Backend),
  log: LogKind,
  monitor: v.pipe(v.picklist(["nflog", "kmsg", "dmesg", "off"]), v.description("what watches for bypass attempts")),
  detection: v.pipe(
    v.picklist(["verified", "unverified", "off"]),
    v.description("verified: a probe attempt made before CMD started was seen; unverified: it was not (a degraded line says why)"),
  ),
  degraded: v.pipe(v.array(v.string()), v.description("components that do not work; each has its own degraded line")),
  setup_ms: v.number(),
});

export const SandboxClosed = event("sandbox_closed", "The sandbox is gone: CMD ended and everything proxywall made was removed", {
  exit_code: v.pipe(v.number(), v.integer(), v.description("proxywall's own exit code")),
  cmd_exit_code: v.nullable(v.number()),
  cmd_signal: v.nullable(v.string()),
  duration_ms: v.number(),
  cleanup: v.pipe(v.array(v.string()), v.description("what could not be removed; empty when the host is as it was")),
});

export const ProxyConnect = event("proxy_connect", "One tunnel (CONNECT) or request (absolute URI) through the built-in proxy", {
  method: v.string(),
  client_addr: v.string(),
  client_port: Port,
  dst_host: v.pipe(v.string(), v.description("the host as the client named it (a name, or an address in canonical form)")),
  dst_addr: v.pipe(v.nullable(v.string()), v.description("the address the proxy connected to: one the policy checked (never a second lookup)")),
  dst_port: Port,
  status: v.pipe(v.number(), v.integer(), v.description("HTTP status the proxy gave the client (200 for an opened tunnel)")),
  bytes_up: v.pipe(v.number(), v.integer(), v.description("bytes from the client to the destination")),
  bytes_down: v.pipe(v.number(), v.integer(), v.description("bytes from the destination to the client")),
  duration_ms: v.number(),
  outcome: v.pipe(
    v.picklist(["ok", "denied", "would_deny", "connect_failed", "resolve_failed", "bad_request", "client_error", "upstream_error", "idle_timeout", "limit"]),
    v.description("denied: the guard or a rule refused it (403); would_deny: --policy-mode audit let through what enforce would refuse"),
  ),
  rule: v.pipe(v.nullable(v.string()), v.description("the rule or guard row that decided, when one did")),
  reason: v.pipe(v.nullable(v.string()), v.description("why the policy decided as it did")),
  error: v.nullable(v.string()),
  process: v.pipe(ProcessInfo, v.description("the process that opened the client connection, looked up while it is open, for refused requests too (evidence, not proof of identity); null when it cannot be told")),
});

export const EventLine = v.variant("event", [BypassDetect, BypassSummary, BypassTotals, Degraded, SandboxReady, SandboxClosed, ProxyConnect]);

export type BypassDetect = v.InferOutput<typeof BypassDetect>;
export type Degraded = v.InferOutput<typeof Degraded>;
export type SandboxReady = v.InferOutput<typeof SandboxReady>;
export type SandboxClosed = v.InferOutput<typeof SandboxClosed>;
export type ProxyConnect = v.InferOutput<typeof ProxyConnect>;
export type BypassSummary = v.InferOutput<typeof BypassSummary>;
export type BypassTotals = v.InferOutput<typeof BypassTotals>;
export type ProcessInfo = v.InferOutput<typeof ProcessInfo>;
export type EventLine = v.InferOutput<typeof EventLine>;
export type Proto = v.InferOutput<typeof Proto>;
export type Family = v.InferOutput<typeof Family>;
export type Source = v.InferOutput<typeof Source>;

export const REASON_BYPASS = "direct connection bypassed HTTP CONNECT proxy" as const;
