// proxywall's event lines as Elastic Common Schema (ECS 9.4.0) documents: nested objects, as Elastic
// Agent and Beats write them. One table, ECS_MAP, says what `event.*` each kind of line gets; the
// builders below fill source/destination/network/process. Pure functions of the event.
//
//   line              event.kind  event.category   event.type                      event.outcome
//   bypass_detect     alert       network          connection, denied (reject)     failure
//                                                  connection (observe, unfenced)  unknown
//   bypass_summary    metric      network          info                            -
//   bypass_totals     metric      network          info                            -
//   proxy_connect     event       network          connection, allowed, end        success (ok, would_deny)
//                                                  connection, denied (denied)     failure
//                                                  connection (other failures)     failure
//   sandbox_ready     event       process          start                           success
//   sandbox_closed    event       process          end                             success, or failure with cleanup left
//   degraded          event       configuration    info                            failure
//
// Only ECS fields: what ECS has no field for (the sandbox id, the hint, counts per protocol) goes to
// `labels` (ECS's custom key/value pairs, string values); `event.action` is proxywall's event name.
import * as v from "valibot";
import { VERSION } from "../../version.ts";
import type { BypassDetect, BypassSummary, BypassTotals, Degraded, EventLine, ProcessInfo, ProxyConnect, SandboxClosed, SandboxReady } from "../schema.ts";
import { BYPASS_RULE, isAddress } from "./ocsf.ts";

export const ECS_VERSION = "9.4.0";

type Kind = "alert" | "event" | "metric";
type Category = "network" | "process" | "configuration";
type EventType = "connection" | "denied" | "allowed" | "end" | "start" | "info";
type Outcome = "success" | "failure" | "unknown";

/** What `event.*` each kind of line gets (event.type and outcome may depend on the line). */
export const ECS_MAP: { [K in EventLine["event"]]: (e: Extract<EventLine, { event: K }>) => { kind: Kind; category: Category[]; type: EventType[]; outcome?: Outcome } } = {
  bypass_detect: (e) =>
    e.action === "reject" ? { kind: "alert", category: ["network"], type: ["connection", "denied"], outcome: "failure" } : { kind: "alert", category: ["network"], type: ["connection"], outcome: "unknown" },
  bypass_summary: () => ({ kind: "metric", category: ["network"], type: ["info"] }),
  bypass_totals: () => ({ kind: "metric", category: ["network"], type: ["info"] }),
  proxy_connect: (e) => {
    const outcome = e.outcome;
    // would_deny: --policy-mode audit let it through although a rule would refuse it (rule.name says which)
    if (outcome === "ok" || outcome === "would_deny") return { kind: "event", category: ["network"], type: ["connection", "allowed", "end"], outcome: "success" };
    return { kind: "event", category: ["network"], type: outcome === "denied" ? ["connection", "denied"] : ["connection"], outcome: "failure" };
  },
  sandbox_ready: () => ({ kind: "event", category: ["process"], type: ["start"], outcome: "success" }),
  sandbox_closed: (e) => ({ kind: "event", category: ["process"], type: ["end"], outcome: e.cleanup.length === 0 ? "success" : "failure" }),
  degraded: () => ({ kind: "event", category: ["configuration"], type: ["info"], outcome: "failure" }),
};

// ---- the shape of the documents (for `proxywall schema --event-format ecs`, and their types) --

const Str = v.string();
const Num = v.number();
const opt = <T extends v.GenericSchema>(s: T) => v.optional(s);

const Endpoint = v.strictObject({ ip: opt(Str), port: opt(Num), domain: opt(Str), bytes: opt(Num) });
const ParentProcess = v.strictObject({ pid: Num, executable: opt(Str), name: opt(Str) });
const Process = v.strictObject({
  pid: opt(Num),
  executable: opt(Str),
  name: opt(Str),
  args: opt(v.array(Str)),
  args_count: opt(Num),
  command_line: opt(Str),
  start: opt(Str),
  exit_code: opt(Num),
  user: opt(v.strictObject({ id: Str })),
  parent: opt(ParentProcess),
});

export const EcsDocument = v.pipe(
  v.strictObject({
    "@timestamp": v.pipe(Str, v.description("when proxywall wrote the line")),
    ecs: v.strictObject({ version: v.literal(ECS_VERSION) }),
    event: v.strictObject({
      kind: v.picklist(["alert", "event", "metric"]),
      category: v.array(v.picklist(["network", "process", "configuration"])),
      type: v.array(v.picklist(["connection", "denied", "allowed", "end", "start", "info"])),
      outcome: opt(v.picklist(["success", "failure", "unknown"])),
      action: v.pipe(Str, v.description("proxywall's event name: bypass_detect, proxy_connect, ...")),
      module: v.literal("proxywall"),
      dataset: v.literal("proxywall.events"),
      provider: opt(v.pipe(Str, v.description("where proxywall saw a bypass: nfqueue, nflog, kmsg, dmesg, parse"))),
      reason: opt(Str),
      start: opt(Str),
      end: opt(Str),
      duration: opt(v.pipe(Num, v.description("nanoseconds"))),
    }),
    message: opt(Str),
    observer: v.strictObject({
      product: v.literal("proxywall"),
      vendor: v.literal("proxywall"),
      version: Str,
      type: v.literal("firewall"),
      egress: opt(v.strictObject({ interface: v.strictObject({ name: Str }) })),
    }),
    source: opt(Endpoint),
    destination: opt(Endpoint),
    network: opt(
      v.strictObject({
        transport: opt(v.string()),
        type: opt(v.picklist(["ipv4", "ipv6"])),
        direction: opt(v.literal("egress")),
        protocol: opt(v.picklist(["dns", "http"])),
        bytes: opt(Num),
        packets: opt(Num),
      }),
    ),
    process: opt(Process),
    user: opt(v.strictObject({ id: Str })),
    group: opt(v.strictObject({ id: Str })),
    dns: opt(v.strictObject({ question: v.strictObject({ name: Str }) })),
    rule: opt(v.strictObject({ name: Str, ruleset: v.literal("proxywall") })),
    http: opt(v.strictObject({ request: v.strictObject({ method: Str }), response: opt(v.strictObject({ status_code: Num })) })),
    error: opt(v.strictObject({ message: Str, type: opt(Str) })),
    labels: v.pipe(v.record(Str, Str), v.description("what ECS has no field for; `sandbox` is the sandbox id")),
  }),
  v.description(`One proxywall event line as an ECS ${ECS_VERSION} document`),
);
export type EcsDocument = v.InferOutput<typeof EcsDocument>;

// ---- the builders ----------------------------------------------------------------------------

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1).replace(/ \(deleted\)$/, "");
const OBSERVER = { product: "proxywall", vendor: "proxywall", version: VERSION, type: "firewall" } as const;

function base<E extends EventLine>(e: E, labels: Record<string, string | number | boolean | null | undefined> = {}) {
  const ev = (ECS_MAP[e.event] as (e: E) => ReturnType<(typeof ECS_MAP)["degraded"]>)(e);
  const strings: Record<string, string> = { sandbox: e.sandbox };
  for (const [k, val] of Object.entries(labels)) if (val !== null && val !== undefined) strings[k] = String(val);
  return {
    "@timestamp": e.ts,
    ecs: { version: ECS_VERSION } as const,
    event: { kind: ev.kind, category: ev.category, type: ev.type, ...(ev.outcome ? { outcome: ev.outcome } : {}), action: e.event, module: "proxywall" as const, dataset: "proxywall.events" as const },
    observer: OBSERVER,
    labels: strings,
  };
}

/** proxywall's process as ECS's: the nearest ancestor is `process.parent` (ECS has one level of parent). */
function ecsProcess(p: Extract<NonNullable<ProcessInfo>, { resolved: true }>): NonNullable<EcsDocument["process"]> {
  const parent = p.ancestors[0];
  const name = p.exe !== null ? basename(p.exe) : p.cmdline[0] !== undefined ? basename(p.cmdline[0]) : "";
  return {
    pid: p.pid,
    ...(p.exe === null ? {} : { executable: p.exe }),
    ...(name === "" ? {} : { name }),
    ...(p.cmdline.length === 0 ? {} : { args: p.cmdline, args_count: p.cmdline.length, command_line: p.cmdline.join(" ") }),
    ...(p.start_time === null ? {} : { start: p.start_time }),
    ...(p.uid === null ? {} : { user: { id: String(p.uid) } }),
    ...(parent ? { parent: { pid: parent.pid, ...(parent.exe === null ? {} : { executable: parent.exe, name: basename(parent.exe) }) } } : {}),
  };
}

function bypass(e: BypassDetect): EcsDocument {
  const b = base(e, {
    log_time: e.log_time,
    process_unresolved: e.process?.resolved === false ? e.process.why : null,
    also_held_by: e.process?.resolved && e.process.also_held_by.length > 0 ? e.process.also_held_by.map((p) => p.pid).join(",") : null,
  });
  const p = e.process?.resolved ? ecsProcess(e.process) : null;
  return {
    ...b,
    event: { ...b.event, provider: e.source, reason: e.reason },
    message: e.hint,
    ...(e.out_if === null ? {} : { observer: { ...OBSERVER, egress: { interface: { name: e.out_if } } } }),
    source: { ...(e.src_addr === null ? {} : { ip: e.src_addr }), ...(e.src_port === null ? {} : { port: e.src_port }) },
    destination: { ip: e.dst_addr, port: e.dst_port },
    network: { transport: e.proto, type: e.family, direction: "egress", ...(e.dst_port === 53 ? { protocol: "dns" as const } : {}) },
    ...(p === null ? {} : { process: p }),
    ...(e.uid === null ? {} : { user: { id: String(e.uid) } }),
    ...(e.gid === null ? {} : { group: { id: String(e.gid) } }),
    ...(e.dns_query === null ? {} : { dns: { question: { name: e.dns_query } } }),
    rule: { name: BYPASS_RULE[e.action], ruleset: "proxywall" },
  };
}

function summary(e: BypassSummary): EcsDocument {
  const b = base(e, { count: e.count, final: e.final });
  return {
    ...b,
    event: { ...b.event, start: e.first_seen, end: e.last_seen },
    message: `${e.count} bypass attempt${e.count === 1 ? "" : "s"}${e.final ? " in all" : " so far"}`,
    destination: { ip: e.dst_addr, port: e.dst_port },
    network: { transport: e.proto, direction: "egress", ...(e.dst_port === 53 ? { protocol: "dns" as const } : {}) },
    ...(e.exe === null ? {} : { process: { executable: e.exe, name: basename(e.exe) } }),
  };
}

function totals(e: BypassTotals): EcsDocument {
  const known = [e.tcp, e.udp, e.other].filter((n): n is number => n !== null);
  return {
    ...base(e, { tcp: e.tcp, udp: e.udp, other: e.other, events: e.events, lost: e.lost, final: e.final }),
    message: "rejected packets per protocol, from the rule counters",
    ...(known.length > 0 ? { network: { packets: known.reduce((a, b) => a + b, 0) } } : {}),
  };
}

function proxyConnect(e: ProxyConnect): EcsDocument {
  const b = base(e, { outcome: e.outcome, reason: e.reason, process_unresolved: e.process?.resolved === false ? e.process.why : null });
  const ns = Math.round(e.duration_ms * 1e6);
  const end = Date.parse(e.ts);
  const p = e.process?.resolved ? ecsProcess(e.process) : null;
  return {
    ...b,
    event: { ...b.event, duration: ns, start: new Date(end - Math.round(e.duration_ms)).toISOString(), end: e.ts, ...(e.reason ? { reason: e.reason } : {}) },
    message: `${e.method} ${e.dst_host}:${e.dst_port} through the proxy: ${e.status} ${e.outcome}`,
    source: { ip: e.client_addr, port: e.client_port, bytes: e.bytes_up },
    destination: { ...(isAddress(e.dst_host) ? { ip: e.dst_host } : { domain: e.dst_host, ...(e.dst_addr ? { ip: e.dst_addr } : {}) }), port: e.dst_port, bytes: e.bytes_down },
    network: { transport: "tcp", direction: "egress", protocol: "http", bytes: e.bytes_up + e.bytes_down },
    http: { request: { method: e.method }, ...(e.status === 0 ? {} : { response: { status_code: e.status } }) },
    ...(p ? { process: p } : {}),
    ...(e.rule ? { rule: { name: e.rule, ruleset: "proxywall" as const } } : {}),
    ...(e.error === null ? {} : { error: { message: e.error } }),
  };
}

function ready(e: SandboxReady): EcsDocument {
  return {
    ...base(e, {
      netns: e.netns,
      sandbox_ipv4: e.sandbox_ipv4,
      sandbox_ipv6: e.sandbox_ipv6,
      proxy_url: e.proxy.url,
      proxy_builtin: e.proxy.builtin,
      backend: e.backend,
      log: e.log,
      monitor: e.monitor,
      detection: e.detection,
      degraded: e.degraded.length > 0 ? e.degraded.join(",") : null,
      setup_ms: e.setup_ms,
    }),
    message: `sandbox ${e.sandbox} is fenced; CMD starts next`,
  };
}

function closed(e: SandboxClosed): EcsDocument {
  const b = base(e, { exit_code: e.exit_code, cmd_signal: e.cmd_signal });
  return {
    ...b,
    event: { ...b.event, duration: Math.round(e.duration_ms * 1e6) },
    message: `sandbox ${e.sandbox} removed${e.cleanup.length === 0 ? "" : `, except: ${e.cleanup.join("; ")}`}`,
    ...(e.cmd_exit_code === null ? {} : { process: { exit_code: e.cmd_exit_code } }),
    ...(e.cleanup.length === 0 ? {} : { error: { message: e.cleanup.join("; ") } }),
  };
}

function degraded(e: Degraded): EcsDocument {
  return {
    ...base(e, { component: e.component, fix: e.fix, still_protected: e.still_protected }),
    message: `${e.component}: ${e.missing}`,
    error: { type: e.component, message: e.missing },
  };
}

const BUILDERS: { [K in EventLine["event"]]: (e: Extract<EventLine, { event: K }>) => EcsDocument } = {
  bypass_detect: bypass,
  bypass_summary: summary,
  bypass_totals: totals,
  proxy_connect: proxyConnect,
  sandbox_ready: ready,
  sandbox_closed: closed,
  degraded,
};

/** One event line as its ECS document. */
export function toEcs(e: EventLine): EcsDocument {
  return (BUILDERS[e.event] as (e: EventLine) => EcsDocument)(e);
}
