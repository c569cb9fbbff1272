// proxywall's event lines as OCSF 1.8.0 events (Open Cybersecurity Schema Framework). One table,
// OCSF_MAP, says which class and activity each kind of line becomes; the builders below it fill the
// attributes. Pure functions of the (valibot-typed) event: nothing is looked up.
//
//   line              class                          activity                      action / disposition
//   bypass_detect     4001 Network Activity          5 Refuse (reject)             2 Denied / 2 Blocked
//                                                    1 Open (monitor: observe,     3 Observed / 17 Logged
//                                                      run: unfenced)
//     to port 53      4003 DNS Activity              1 Query                       as above
//   bypass_summary    4001 Network Activity          6 Traffic (count, start/end)  -
//   bypass_totals     4001 Network Activity          6 Traffic (count)             -
//   proxy_connect     4001 Network Activity          2 Close (ok)                  1 Allowed / 1 Allowed
//                                                    2 Close (would_deny: audit)   3 Observed / 17 Logged
//                                                    5 Refuse (denied)             2 Denied / 2 Blocked
//                                                    5 Refuse (bad_request, limit) -
//                                                    4 Fail (connect/resolve)      -
//                                                    3 Reset (cut, idle timeout)   -
//                    (PROXY_OUTCOME below is the table per outcome)
//   sandbox_ready     6002 Application Lifecycle     3 Start                       -
//   sandbox_closed    6002 Application Lifecycle     4 Stop                        -
//   degraded          6002 Application Lifecycle     99 Other ("Degraded")         -
//
// What OCSF has no attribute for (the hint, the sandbox id, where proxywall saw it, ...) goes to
// `unmapped`; the sandbox id is `metadata.correlation_uid` too, so that one sandbox's lines group.
import * as v from "valibot";
import { VERSION } from "../../version.ts";
import type { BypassDetect, BypassSummary, BypassTotals, Degraded, EventLine, ProcessInfo, ProxyConnect, SandboxClosed, SandboxReady } from "../schema.ts";

export const OCSF_VERSION = "1.8.0";

// ---- the table -------------------------------------------------------------------------------

const CATEGORY = { 4: "Network Activity", 6: "Application Activity" } as const;

/** The classes proxywall writes, with the activities it uses (id -> OCSF caption). */
export const OCSF_CLASSES = {
  network_activity: { uid: 4001, caption: "Network Activity", category_uid: 4, activities: { 1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic" } },
  dns_activity: { uid: 4003, caption: "DNS Activity", category_uid: 4, activities: { 1: "Query" } },
  application_lifecycle: { uid: 6002, caption: "Application Lifecycle", category_uid: 6, activities: { 3: "Start", 4: "Stop", 99: "Other" } },
} as const;
type ClassName = keyof typeof OCSF_CLASSES;

const SEVERITY = { 1: "Informational", 2: "Low", 3: "Medium", 4: "High" } as const;
const ACTION = { 1: "Allowed", 2: "Denied", 3: "Observed" } as const;
const DISPOSITION = { 1: "Allowed", 2: "Blocked", 17: "Logged" } as const;
const STATUS = { 1: "Success", 2: "Failure" } as const;

/** The firewall rule a bypass met (ECS's rule.name says the same). */
// unfenced: the rule that logged or held it; the one that would have rejected it was changed.
export const BYPASS_RULE = { reject: "reject-direct", observe: "log-direct", unfenced: "log-direct" } as const;

/** Which class and activity each kind of line becomes, and how its attributes are filled. */
export const OCSF_MAP: { [K in EventLine["event"]]: (e: Extract<EventLine, { event: K }>) => OcsfEvent } = {
  bypass_detect: (e) => bypass(e),
  bypass_summary: (e) => summary(e),
  bypass_totals: (e) => totals(e),
  proxy_connect: (e) => proxyConnect(e),
  sandbox_ready: (e) => ready(e),
  sandbox_closed: (e) => closed(e),
  degraded: (e) => degraded(e),
};

// ---- the shape of the lines (for `proxywall schema --event-format ocsf`, and their types) -----

const Product = v.strictObject({ name: v.literal("proxywall"), vendor_name: v.literal("proxywall"), version: v.string() });
const Metadata = v.strictObject({
  version: v.literal(OCSF_VERSION),
  product: Product,
  profiles: v.pipe(v.array(v.picklist(["host", "security_control"])), v.description("the OCSF profiles whose attributes the event uses")),
  correlation_uid: v.pipe(v.string(), v.description("the sandbox id (proxywall's `sandbox`)")),
  original_time: v.optional(v.pipe(v.string(), v.description("the kernel record's own timestamp, as found"))),
});

const User = v.strictObject({ uid: v.pipe(v.string(), v.description("the Unix uid")) });

export interface OcsfProcess {
  pid: number;
  name?: string;
  path?: string;
  cmd_line?: string;
  created_time?: number;
  user?: { uid: string };
  parent_process?: OcsfProcess;
}
const Process: v.GenericSchema<OcsfProcess> = v.lazy(() =>
  v.strictObject({
    pid: v.number(),
    name: v.optional(v.string()),
    path: v.optional(v.string()),
    cmd_line: v.optional(v.string()),
    created_time: v.optional(v.number()),
    user: v.optional(User),
    parent_process: v.optional(Process),
  }),
);

const Endpoint = v.strictObject({
  name: v.optional(v.pipe(v.string(), v.description("the sandbox (its id, or the namespace monitor watches)"))),
  ip: v.optional(v.string()),
  hostname: v.optional(v.string()),
  port: v.optional(v.number()),
});

const ConnectionInfo = v.strictObject({
  direction_id: v.literal(2),
  direction: v.literal("Outbound"),
  protocol_num: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(255))),
  protocol_name: v.optional(v.string()),
  protocol_ver_id: v.optional(v.picklist([4, 6])),
});

const Severity = v.picklist([1, 2, 3, 4]);
const base = {
  metadata: Metadata,
  time: v.pipe(v.number(), v.description("when proxywall wrote the line, in milliseconds since the epoch")),
  category_uid: v.picklist([4, 6]),
  category_name: v.string(),
  class_name: v.string(),
  activity_name: v.string(),
  type_name: v.string(),
  severity_id: Severity,
  severity: v.string(),
  message: v.optional(v.string()),
  status_id: v.optional(v.picklist([1, 2])),
  status: v.optional(v.string()),
  status_code: v.optional(v.string()),
  status_detail: v.optional(v.string()),
  unmapped: v.optional(v.record(v.string(), v.unknown())),
};
const network = {
  src_endpoint: v.optional(Endpoint),
  dst_endpoint: v.optional(Endpoint),
  connection_info: v.optional(ConnectionInfo),
  actor: v.optional(v.strictObject({ process: v.optional(Process), user: v.optional(User), app_name: v.optional(v.string()) })),
  action_id: v.optional(v.picklist([1, 2, 3])),
  action: v.optional(v.string()),
  disposition_id: v.optional(v.picklist([1, 2, 17])),
  disposition: v.optional(v.string()),
  firewall_rule: v.optional(v.strictObject({ name: v.string() })),
  is_src_dst_assignment_known: v.optional(v.boolean()),
  count: v.optional(v.number()),
  start_time: v.optional(v.number()),
  end_time: v.optional(v.number()),
  duration: v.optional(v.number()),
  traffic: v.optional(v.strictObject({ bytes_out: v.number(), bytes_in: v.number(), bytes: v.number() })),
};

export const OcsfNetworkActivity = v.pipe(
  v.strictObject({ ...base, class_uid: v.literal(4001), activity_id: v.picklist([1, 2, 3, 4, 5, 6]), type_uid: v.number(), ...network }),
  v.description("Network Activity (4001): bypass attempts, summaries and totals, proxy requests"),
);
export const OcsfDnsActivity = v.pipe(
  v.strictObject({ ...base, class_uid: v.literal(4003), activity_id: v.literal(1), type_uid: v.number(), ...network, query: v.optional(v.strictObject({ hostname: v.string() })) }),
  v.description("DNS Activity (4003): a bypass attempt to port 53; `query` when the packet shows the name"),
);
export const OcsfApplicationLifecycle = v.pipe(
  v.strictObject({ ...base, class_uid: v.literal(6002), activity_id: v.picklist([3, 4, 99]), type_uid: v.number(), app: Product }),
  v.description("Application Lifecycle (6002): the sandbox started (3) or stopped (4), or a part is degraded (99)"),
);
export const OcsfEvent = v.union([OcsfNetworkActivity, OcsfDnsActivity, OcsfApplicationLifecycle]);
export type OcsfEvent = v.InferOutput<typeof OcsfEvent>;
export const OCSF_DEFINITIONS = { process: Process };

// ---- the builders ----------------------------------------------------------------------------

const PRODUCT = { name: "proxywall", vendor_name: "proxywall", version: VERSION } as const;

function head<C extends ClassName>(cls: C, activity: keyof (typeof OCSF_CLASSES)[C]["activities"] & number, severity: keyof typeof SEVERITY, e: { ts: string; sandbox: string }, profiles: ("host" | "security_control")[] = []) {
  const c = OCSF_CLASSES[cls];
  const activityName: string = (c.activities as Record<number, string>)[activity]!;
  return {
    metadata: { version: OCSF_VERSION as typeof OCSF_VERSION, product: PRODUCT, profiles, correlation_uid: e.sandbox },
    time: Date.parse(e.ts),
    class_uid: c.uid as (typeof OCSF_CLASSES)[C]["uid"],
    class_name: c.caption,
    category_uid: c.category_uid,
    category_name: CATEGORY[c.category_uid],
    activity_id: activity,
    activity_name: activityName,
    type_uid: c.uid * 100 + activity,
    type_name: `${c.caption}: ${activityName}`,
    severity_id: severity,
    severity: SEVERITY[severity],
  };
}

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1).replace(/ \(deleted\)$/, "");

// IANA protocol numbers of the names bypass lines use ("ip-N" carries its number).
const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, udplite: 136, sctp: 132, dccp: 33, icmp: 1, icmpv6: 58, igmp: 2, gre: 47, esp: 50, ah: 51 };
const outbound = (proto: string | null, family: "ipv4" | "ipv6" | null) => ({
  direction_id: 2 as const,
  direction: "Outbound" as const,
  ...(proto === null ? {} : { protocol_num: PROTO_NUM[proto] ?? Number(proto.slice(3)), protocol_name: proto }),
  ...(family === null ? {} : { protocol_ver_id: family === "ipv4" ? (4 as const) : (6 as const) }),
});

/** proxywall's process (with its ancestors as nested parent_process) as an OCSF process. */
export function ocsfProcess(p: Extract<NonNullable<ProcessInfo>, { resolved: true }>): OcsfProcess {
  let parent: OcsfProcess | undefined;
  for (const a of [...p.ancestors].reverse()) {
    parent = { pid: a.pid, ...(a.exe === null ? {} : { name: basename(a.exe), path: a.exe }), ...(parent ? { parent_process: parent } : {}) };
  }
  const created = p.start_time === null ? NaN : Date.parse(p.start_time);
  const name = p.exe !== null ? basename(p.exe) : p.cmdline[0] !== undefined ? basename(p.cmdline[0]) : undefined;
  return {
    pid: p.pid,
    ...(name === undefined || name === "" ? {} : { name }),
    ...(p.exe === null ? {} : { path: p.exe }),
    ...(p.cmdline.length === 0 ? {} : { cmd_line: p.cmdline.join(" ") }),
    ...(Number.isFinite(created) ? { created_time: created } : {}),
    ...(p.uid === null ? {} : { user: { uid: String(p.uid) } }),
    ...(parent ? { parent_process: parent } : {}),
  };
}

function bypass(e: BypassDetect): OcsfEvent {
  const process = e.process?.resolved ? ocsfProcess(e.process) : null;
  const actor = { ...(process ? { process } : {}), ...(e.uid === null ? {} : { user: { uid: String(e.uid) } }) };
  const hasActor = Object.keys(actor).length > 0;
  const profiles: ("host" | "security_control")[] = hasActor ? ["host", "security_control"] : ["security_control"];
  const reject = e.action === "reject";
  const attributes = {
    action_id: reject ? (2 as const) : (3 as const),
    action: reject ? ACTION[2] : ACTION[3],
    disposition_id: reject ? (2 as const) : (17 as const),
    disposition: reject ? DISPOSITION[2] : DISPOSITION[17],
    message: e.reason,
    src_endpoint: { name: e.sandbox, ...(e.src_addr === null ? {} : { ip: e.src_addr }), ...(e.src_port === null ? {} : { port: e.src_port }) },
    dst_endpoint: { ip: e.dst_addr, port: e.dst_port },
    connection_info: outbound(e.proto, e.family),
    ...(hasActor ? { actor } : {}),
    firewall_rule: { name: BYPASS_RULE[e.action] },
    unmapped: {
      sandbox: e.sandbox,
      source: e.source,
      hint: e.hint,
      ...(e.gid === null ? {} : { gid: e.gid }),
      ...(e.out_if === null ? {} : { out_if: e.out_if }),
      ...(e.process?.resolved === false ? { process_unresolved: e.process.why } : {}),
      ...(e.process?.resolved && e.process.also_held_by.length > 0 ? { also_held_by: e.process.also_held_by.map((p) => p.pid) } : {}),
    },
  };
  const withLogTime = <H extends { metadata: object }>(h: H): H => (e.log_time === null ? h : { ...h, metadata: { ...h.metadata, original_time: e.log_time } });
  if (e.dst_port === 53) {
    return { ...withLogTime(head("dns_activity", 1, 3, e, profiles)), ...attributes, ...(e.dns_query === null ? {} : { query: { hostname: e.dns_query } }) };
  }
  return { ...withLogTime(head("network_activity", reject ? 5 : 1, 3, e, profiles)), ...attributes, is_src_dst_assignment_known: true };
}

function summary(e: BypassSummary): OcsfEvent {
  return {
    ...head("network_activity", 6, 1, e, e.exe === null ? [] : ["host"]),
    message: `${e.count} bypass attempt${e.count === 1 ? "" : "s"}${e.final ? " in all" : " so far"}`,
    src_endpoint: { name: e.sandbox },
    dst_endpoint: { ip: e.dst_addr, port: e.dst_port },
    connection_info: outbound(e.proto, null),
    // No pid: many processes may be counted here; the executable's name is the actor's app_name.
    ...(e.exe === null ? {} : { actor: { app_name: basename(e.exe) } }),
    count: e.count,
    start_time: Date.parse(e.first_seen),
    end_time: Date.parse(e.last_seen),
    unmapped: { sandbox: e.sandbox, exe: e.exe, final: e.final },
  };
}

function totals(e: BypassTotals): OcsfEvent {
  const known = [e.tcp, e.udp, e.other].filter((n): n is number => n !== null);
  return {
    ...head("network_activity", 6, 1, e),
    message: "rejected packets per protocol, from the rule counters",
    src_endpoint: { name: e.sandbox },
    ...(known.length > 0 ? { count: known.reduce((a, b) => a + b, 0) } : {}),
    unmapped: { sandbox: e.sandbox, tcp: e.tcp, udp: e.udp, other: e.other, events: e.events, lost: e.lost, final: e.final },
  };
}

/**
 * What each outcome of a proxy request is in OCSF: the activity, and the policy's verdict (action
 * and disposition): allowed, blocked by a rule or the guard, or let through by `--policy-mode audit`
 * although a rule would refuse it (observed and logged).
 */
export const PROXY_OUTCOME: Record<ProxyConnect["outcome"], { activity: 2 | 3 | 4 | 5; verdict?: "allowed" | "blocked" | "audit" }> = {
  ok: { activity: 2, verdict: "allowed" }, // Close: the line is written when the tunnel or request has ended
  would_deny: { activity: 2, verdict: "audit" },
  denied: { activity: 5, verdict: "blocked" }, // Refuse: 403 from the proxy
  bad_request: { activity: 5 },
  limit: { activity: 5 }, // 503: too many clients
  connect_failed: { activity: 4 }, // Fail: no way to the destination
  resolve_failed: { activity: 4 },
  client_error: { activity: 3 }, // Reset: cut by one side, or by the proxy
  upstream_error: { activity: 3 },
  idle_timeout: { activity: 3 },
};
const VERDICT = {
  allowed: { action_id: 1, action: ACTION[1], disposition_id: 1, disposition: DISPOSITION[1] },
  blocked: { action_id: 2, action: ACTION[2], disposition_id: 2, disposition: DISPOSITION[2] },
  audit: { action_id: 3, action: ACTION[3], disposition_id: 17, disposition: DISPOSITION[17] },
} as const;

/** The destination as an endpoint: an address as `ip`, a name as `hostname` (with the address connected to, when known). */
export function isAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

function proxyConnect(e: ProxyConnect): OcsfEvent {
  const o = PROXY_OUTCOME[e.outcome];
  const verdict = o.verdict ? VERDICT[o.verdict] : null;
  const ok = e.outcome === "ok" || e.outcome === "would_deny";
  const time = Date.parse(e.ts);
  const process = e.process?.resolved ? ocsfProcess(e.process) : null;
  const profiles: ("host" | "security_control")[] = [...(process ? ["host" as const] : []), ...(verdict ? ["security_control" as const] : [])];
  return {
    ...head("network_activity", o.activity, e.outcome === "would_deny" ? 2 : 1, e, profiles),
    ...(verdict ?? {}),
    message: `${e.method} ${e.dst_host}:${e.dst_port} through the proxy: ${e.status} ${e.outcome}`,
    status_id: ok ? 1 : 2,
    status: ok ? STATUS[1] : STATUS[2],
    status_code: String(e.status),
    ...(e.error !== null ? { status_detail: e.error } : e.reason ? { status_detail: e.reason } : {}),
    src_endpoint: { name: e.sandbox, ip: e.client_addr, port: e.client_port },
    dst_endpoint: isAddress(e.dst_host) ? { ip: e.dst_host, port: e.dst_port } : { hostname: e.dst_host, ...(e.dst_addr ? { ip: e.dst_addr } : {}), port: e.dst_port },
    connection_info: outbound("tcp", null),
    is_src_dst_assignment_known: true,
    ...(process ? { actor: { process } } : {}),
    ...(e.rule ? { firewall_rule: { name: e.rule } } : {}),
    traffic: { bytes_out: e.bytes_up, bytes_in: e.bytes_down, bytes: e.bytes_up + e.bytes_down },
    duration: Math.round(e.duration_ms),
    start_time: time - Math.round(e.duration_ms),
    end_time: time,
    unmapped: {
      sandbox: e.sandbox,
      method: e.method,
      outcome: e.outcome,
      ...(e.reason ? { reason: e.reason } : {}),
      ...(e.process?.resolved === false ? { process_unresolved: e.process.why } : {}),
    },
  };
}

function ready(e: SandboxReady): OcsfEvent {
  return {
    ...head("application_lifecycle", 3, 1, e),
    app: PRODUCT,
    message: `sandbox ${e.sandbox} is fenced (${e.detection === "verified" ? "detection verified" : `detection ${e.detection}`}${e.degraded.length > 0 ? `; degraded: ${e.degraded.join(", ")}` : ""}); CMD starts next`,
    unmapped: {
      sandbox: e.sandbox,
      netns: e.netns,
      sandbox_ipv4: e.sandbox_ipv4,
      sandbox_ipv6: e.sandbox_ipv6,
      proxy: e.proxy,
      backend: e.backend,
      log: e.log,
      monitor: e.monitor,
      detection: e.detection,
      degraded: e.degraded,
      setup_ms: e.setup_ms,
    },
  };
}

function closed(e: SandboxClosed): OcsfEvent {
  const clean = e.cleanup.length === 0;
  return {
    ...head("application_lifecycle", 4, clean ? 1 : 3, e),
    app: PRODUCT,
    message: `sandbox ${e.sandbox} removed${clean ? "" : `, except: ${e.cleanup.join("; ")}`}`,
    status_id: clean ? 1 : 2,
    status: clean ? STATUS[1] : STATUS[2],
    status_code: String(e.exit_code),
    unmapped: { sandbox: e.sandbox, exit_code: e.exit_code, cmd_exit_code: e.cmd_exit_code, cmd_signal: e.cmd_signal, duration_ms: e.duration_ms, cleanup: e.cleanup },
  };
}

function degraded(e: Degraded): OcsfEvent {
  return {
    ...head("application_lifecycle", 99, 3, e),
    activity_name: "Degraded",
    app: PRODUCT,
    message: `${e.component}: ${e.missing}`,
    status_id: 2,
    status: STATUS[2],
    status_detail: e.missing,
    unmapped: { sandbox: e.sandbox, component: e.component, fix: e.fix, still_protected: e.still_protected },
  };
}

/** One event line as its OCSF event. */
export function toOcsf(e: EventLine): OcsfEvent {
  return (OCSF_MAP[e.event] as (e: EventLine) => OcsfEvent)(e);
}
