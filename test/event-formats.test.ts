// --event-format ocsf|ecs (src/events/formats/): every kind of event line, in each of its variants,
// maps to an OCSF 1.8.0 event that validates against the OCSF schema's own files (required
// attributes, enumerations, types, profiles; test/support/ocsf.ts) and to an ECS document whose
// every field is in ECS's field list (test/support/ecs.ts), and both validate against the schema
// `proxywall schema --event-format F` prints. The class, activity and event.* of each kind are the
// table's; the README's example lines are what the code writes. No root needed: `parse` runs here
// too; `run` and `monitor` with each format are in test/event-formats-live.test.ts.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { EventWriter } from "../src/events/event-writer.ts";
import { ECS_VERSION, EcsDocument, toEcs } from "../src/events/formats/ecs.ts";
import { eventFormat, EVENT_FORMATS } from "../src/events/formats/index.ts";
import { OCSF_VERSION, OcsfEvent, PROXY_OUTCOME, toOcsf } from "../src/events/formats/ocsf.ts";
import type { EventLine } from "../src/events/schema.ts";
import { openEventSink } from "../src/events/sink.ts";
import { ECS_PACKAGE_VERSION, ecsIssues } from "./support/ecs.ts";
import { ocsfIssues } from "./support/ocsf.ts";
import { tempDir } from "./support/temp.ts";
import { runCli as proxywall } from "./support/cli.ts";

const ROOT = join(import.meta.dir, "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const head = { v: 1, ts: "2026-11-29T14:45:00.185Z", sandbox: "5419c89a" } as const;

/** The README's bypass line (proxywall's own format). */
const README_BYPASS = JSON.parse(/```json\n(\{"v":1,"event":"bypass_detect".*\})\n```/.exec(README)![1]!) as EventLine;

const bypass = README_BYPASS as Extract<EventLine, { event: "bypass_detect" }>;
const resolved = bypass.process as Extract<NonNullable<typeof bypass.process>, { resolved: true }>;
const proxy = {
  ...head,
  event: "proxy_connect",
  method: "CONNECT",
  client_addr: "127.0.0.1",
  client_port: 40000,
  dst_host: "example.com",
  dst_port: 443,
  status: 200,
  bytes_up: 517,
  bytes_down: 4096,
  duration_ms: 80.4,
  outcome: "ok",
  error: null,
  dst_addr: "93.184.215.14",
  rule: null,
  reason: null,
  process: null,
} as const;
/** A proxy_connect line with `over` changed. */
const proxyLine = (over: Partial<Extract<EventLine, { event: "proxy_connect" }>> = {}): EventLine => ({ ...proxy, ...over });

/** Every kind of line, in the variants that map differently. */
const EXAMPLES: [string, EventLine][] = [
  ["bypass: the README's (TCP, process resolved)", README_BYPASS],
  ["bypass: with ancestors, another process holding the socket, IPv6", { ...bypass, family: "ipv6", src_addr: "fd00::2", dst_addr: "2001:db8::7", process: { ...resolved, ancestors: [{ pid: 29170, exe: "/bin/sh" }, { pid: 29160, exe: null }], also_held_by: [{ pid: 29175, exe: "/usr/bin/curl", cmdline: ["curl"], uid: 0, start_time: null }] } }],
  ["bypass: process unresolved, no uid", { ...bypass, uid: null, gid: null, process: { resolved: false, why: "the socket was already closed" } }],
  ["bypass: parse (no process, no source port, kernel time)", { ...bypass, process: null, src_addr: null, src_port: null, source: "parse", log_time: "1180.427454", out_if: "vs-cap" }],
  ["bypass: observed by monitor", { ...bypass, action: "observe", source: "nflog" }],
  ["bypass: DNS with the name", { ...bypass, proto: "udp", dst_port: 53, dns_query: "example.com" }],
  ["bypass: DNS without the name (TCP)", { ...bypass, dst_port: 53, process: null }],
  ["bypass_summary", { ...head, event: "bypass_summary", proto: "tcp", dst_addr: "198.51.100.7", dst_port: 80, exe: "/usr/bin/curl", count: 3, first_seen: "2026-11-29T14:45:00.185Z", last_seen: "2026-11-29T14:45:02.001Z", final: false }],
  ["bypass_summary: no executable, DNS", { ...head, event: "bypass_summary", proto: "udp", dst_addr: "198.51.100.7", dst_port: 53, exe: null, count: 1, first_seen: "2026-11-29T14:45:00.185Z", last_seen: "2026-11-29T14:45:00.185Z", final: true }],
  ["bypass_totals", { ...head, event: "bypass_totals", tcp: 3, udp: 0, other: 1, events: 3, lost: 0, final: true }],
  ["bypass_totals: counters unread", { ...head, event: "bypass_totals", tcp: null, udp: null, other: null, events: 0, lost: 2, final: false }],
  ["degraded", { ...head, event: "degraded", component: "privileges", missing: "CMD runs as root", fix: "use --user", still_protected: "the rejects" }],
  ["sandbox_ready", { ...head, event: "sandbox_ready", netns: "pw-5419c89a", sandbox_ipv4: "10.200.0.2", sandbox_ipv6: null, proxy: { url: "http://127.0.0.1:3128", port: 3128, builtin: true }, backend: "nft", log: "nflog", monitor: "nflog", detection: "verified", degraded: ["ipv6"], setup_ms: 41.5 }],
  ["sandbox_closed", { ...head, event: "sandbox_closed", exit_code: 0, cmd_exit_code: 0, cmd_signal: null, duration_ms: 312.25, cleanup: [] }],
  ["sandbox_closed: killed, something left", { ...head, event: "sandbox_closed", exit_code: 137, cmd_exit_code: null, cmd_signal: "SIGKILL", duration_ms: 12, cleanup: ["netns pw-5419c89a: busy"] }],
  ...(Object.keys(PROXY_OUTCOME) as (keyof typeof PROXY_OUTCOME)[]).map((outcome): [string, EventLine] => [
    `proxy_connect: ${outcome}`,
    proxyLine({ outcome, status: outcome === "ok" || outcome === "would_deny" ? 200 : outcome === "denied" ? 403 : 502, error: outcome === "ok" ? null : "it went wrong" }),
  ]),
  ["proxy_connect: to an address, status 0 (cut before any answer)", proxyLine({ dst_host: "2001:db8::1", status: 0, outcome: "client_error", error: "the client went away" })],
  [
    "proxy_connect: denied by a rule, with the address checked, the reason and the client's process",
    proxyLine({ outcome: "denied", status: 403, dst_addr: "93.184.215.14", rule: "deny example.com", reason: "a deny rule matched", process: resolved }),
  ],
];

const issues = (schema: v.GenericSchema, x: unknown) => {
  const r = v.safeParse(schema, x);
  return r.success ? [] : r.issues.map((i) => `${i.path?.map((p) => String(p.key)).join(".") ?? ""}: ${i.message}`);
};

describe("OCSF", () => {
  for (const [name, e] of EXAMPLES) {
    test(`${name}: validates against OCSF ${OCSF_VERSION} and the printed schema`, () => {
      const o = toOcsf(e);
      expect(ocsfIssues(o)).toEqual([]);
      expect(issues(OcsfEvent, o)).toEqual([]);
      expect(o.time).toBe(Date.parse(e.ts));
      expect(o.metadata.correlation_uid).toBe(e.sandbox);
      expect(o.metadata.product.name).toBe("proxywall");
    });
  }

  const ids = (e: EventLine) => {
    const o = toOcsf(e) as Record<string, unknown>;
    return [o.class_uid, o.activity_id, o.type_uid, o.action_id ?? null, o.disposition_id ?? null, o.severity_id];
  };

  test("the table: class, activity, type, action, disposition, severity of each kind", () => {
    expect(ids(bypass)).toEqual([4001, 5, 400105, 2, 2, 3]);
    expect(ids({ ...bypass, action: "observe" })).toEqual([4001, 1, 400101, 3, 17, 3]);
    expect(ids({ ...bypass, proto: "udp", dst_port: 53, dns_query: "example.com" })).toEqual([4003, 1, 400301, 2, 2, 3]);
    expect(ids(EXAMPLES.find(([n]) => n === "bypass_summary")![1])).toEqual([4001, 6, 400106, null, null, 1]);
    expect(ids(EXAMPLES.find(([n]) => n === "bypass_totals")![1])).toEqual([4001, 6, 400106, null, null, 1]);
    expect(ids(EXAMPLES.find(([n]) => n === "sandbox_ready")![1])).toEqual([6002, 3, 600203, null, null, 1]);
    expect(ids(EXAMPLES.find(([n]) => n === "sandbox_closed")![1])).toEqual([6002, 4, 600204, null, null, 1]);
    expect(ids(EXAMPLES.find(([n]) => n === "degraded")![1])).toEqual([6002, 99, 600299, null, null, 3]);
    const outcome = (o: string) => ids(EXAMPLES.find(([n]) => n === `proxy_connect: ${o}`)![1]);
    expect(outcome("ok")).toEqual([4001, 2, 400102, 1, 1, 1]);
    expect(outcome("would_deny")).toEqual([4001, 2, 400102, 3, 17, 2]);
    expect(outcome("denied")).toEqual([4001, 5, 400105, 2, 2, 1]);
    expect(outcome("bad_request")).toEqual([4001, 5, 400105, null, null, 1]);
    expect(outcome("connect_failed")).toEqual([4001, 4, 400104, null, null, 1]);
    expect(outcome("idle_timeout")).toEqual([4001, 3, 400103, null, null, 1]);
  });

  test("a bypass: the process with its parents, uid, endpoints, connection, rule; the rest unmapped", () => {
    const withParents = EXAMPLES[1]![1];
    const o = toOcsf(withParents) as Record<string, any>;
    expect(o.actor.process).toEqual({
      pid: 29174,
      name: "curl",
      path: "/usr/bin/curl",
      cmd_line: "curl -sS --noproxy * -m 5 http://198.51.100.7/",
      created_time: Date.parse(resolved.start_time!),
      user: { uid: "0" },
      parent_process: { pid: 29170, name: "sh", path: "/bin/sh", parent_process: { pid: 29160 } },
    });
    expect(o.actor.user).toEqual({ uid: "0" });
    expect(o.src_endpoint).toEqual({ name: "5419c89a", ip: "fd00::2", port: 47578 });
    expect(o.dst_endpoint).toEqual({ ip: "2001:db8::7", port: 80 });
    expect(o.connection_info).toEqual({ direction_id: 2, direction: "Outbound", protocol_num: 6, protocol_name: "tcp", protocol_ver_id: 6 });
    expect(o.firewall_rule).toEqual({ name: "reject-direct" });
    expect(o.unmapped).toMatchObject({ sandbox: "5419c89a", source: "nfqueue", hint: bypass.hint, also_held_by: [29175] });
    expect(o.metadata.profiles).toEqual(["host", "security_control"]);
  });

  test("DNS: the name is query.hostname; parse's kernel time is metadata.original_time", () => {
    const o = toOcsf({ ...bypass, proto: "udp", dst_port: 53, dns_query: "example.com", log_time: "1180.427454" }) as Record<string, any>;
    expect(o.query).toEqual({ hostname: "example.com" });
    expect(o.metadata.original_time).toBe("1180.427454");
    expect(o.class_name).toBe("DNS Activity");
  });

  test("the validator refuses what OCSF refuses", () => {
    const good = toOcsf(bypass) as Record<string, any>;
    const { severity_id: _, ...noSeverity } = good;
    expect(ocsfIssues(noSeverity)).toContain("severity_id: required by network_activity, missing");
    expect(ocsfIssues({ ...good, activity_id: 8 }).join("\n")).toContain("activity_id: 8 is not one of");
    expect(ocsfIssues({ ...good, activity_name: "Open" }).join("\n")).toContain("is not the caption of activity_id 5");
    expect(ocsfIssues({ ...good, type_uid: 400101 }).join("\n")).toContain("type_uid");
    expect(ocsfIssues({ ...good, time: "2026-11-29" })).toContain("time: is not milliseconds since the epoch");
    expect(ocsfIssues({ ...good, src_endpoint: { ip: "not an address" } })).toContain("src_endpoint.ip: is not an IP address");
    expect(ocsfIssues({ ...good, actor: { process: { pid: 1, uid: 0 } } })).toContain("actor.process.uid: is not a string");
    expect(ocsfIssues({ ...good, actor: { process: { pid: 1, parent_process: { pid: 2, cmdline: "x" } } } })).toContain("actor.process.parent_process.cmdline: process has no such attribute");
    expect(ocsfIssues({ ...good, metadata: { ...good.metadata, profiles: [] } }).join("\n")).toContain("not declared in metadata.profiles");
    expect(ocsfIssues({ ...good, connection_info: { protocol_num: 6 } })).toContain("connection_info.direction_id: required by network_connection_info, missing");
    expect(ocsfIssues({ ...good, actor: {} })).toContain("actor.: actor needs at least one of process, user, invoked_by, session, app_name, app_uid");
    const { src_endpoint: _s, dst_endpoint: _d, ...noEndpoints } = good;
    expect(ocsfIssues(noEndpoints).join("\n")).toContain("needs at least one of dst_endpoint, src_endpoint");
  });
});

describe("ECS", () => {
  test(`the field list is ECS ${ECS_VERSION} (@elastic/ecs), the version the documents declare`, () => {
    expect(ECS_PACKAGE_VERSION).toBe(ECS_VERSION);
  });

  for (const [name, e] of EXAMPLES) {
    test(`${name}: every field is an ECS field, of its type and allowed values; the printed schema holds`, () => {
      const d = toEcs(e);
      expect(ecsIssues(d)).toEqual([]);
      expect(issues(EcsDocument, d)).toEqual([]);
      expect(d["@timestamp"]).toBe(e.ts);
      expect(d.event.action).toBe(e.event);
      expect(d.labels.sandbox).toBe(e.sandbox);
    });
  }

  const event = (e: EventLine) => {
    const d = toEcs(e);
    return [d.event.kind, d.event.category, d.event.type, d.event.outcome ?? null];
  };

  test("the table: event.kind, category, type and outcome of each kind", () => {
    expect(event(bypass)).toEqual(["alert", ["network"], ["connection", "denied"], "failure"]);
    expect(event({ ...bypass, action: "observe" })).toEqual(["alert", ["network"], ["connection"], "unknown"]);
    expect(event(EXAMPLES.find(([n]) => n === "bypass_summary")![1])).toEqual(["metric", ["network"], ["info"], null]);
    expect(event(EXAMPLES.find(([n]) => n === "sandbox_ready")![1])).toEqual(["event", ["process"], ["start"], "success"]);
    expect(event(EXAMPLES.find(([n]) => n === "sandbox_closed: killed, something left")![1])).toEqual(["event", ["process"], ["end"], "failure"]);
    expect(event(EXAMPLES.find(([n]) => n === "degraded")![1])).toEqual(["event", ["configuration"], ["info"], "failure"]);
    const outcome = (o: string) => event(EXAMPLES.find(([n]) => n === `proxy_connect: ${o}`)![1]);
    expect(outcome("ok")).toEqual(["event", ["network"], ["connection", "allowed", "end"], "success"]);
    expect(outcome("would_deny")).toEqual(["event", ["network"], ["connection", "allowed", "end"], "success"]);
    expect(outcome("denied")).toEqual(["event", ["network"], ["connection", "denied"], "failure"]);
    expect(outcome("upstream_error")).toEqual(["event", ["network"], ["connection"], "failure"]);
  });

  test("a bypass: source, destination, network, process with parent, user, rule, DNS name", () => {
    const d = toEcs({ ...EXAMPLES[1]![1], dst_port: 53, proto: "udp", dns_query: "example.com" } as EventLine);
    expect(d.source).toEqual({ ip: "fd00::2", port: 47578 });
    expect(d.destination).toEqual({ ip: "2001:db8::7", port: 53 });
    expect(d.network).toEqual({ transport: "udp", type: "ipv6", direction: "egress", protocol: "dns" });
    expect(d.process).toMatchObject({ pid: 29174, executable: "/usr/bin/curl", name: "curl", args_count: 7, user: { id: "0" }, parent: { pid: 29170, executable: "/bin/sh", name: "sh" } });
    expect(d.dns).toEqual({ question: { name: "example.com" } });
    expect(d.rule).toEqual({ name: "reject-direct", ruleset: "proxywall" });
    expect(d.user).toEqual({ id: "0" });
    expect(d.event.provider).toBe("nfqueue");
  });

  test("a proxy request: bytes each way, duration in nanoseconds, the name as destination.domain", () => {
    const d = toEcs(proxyLine());
    expect(d.source).toEqual({ ip: "127.0.0.1", port: 40000, bytes: 517 });
    expect(d.destination).toEqual({ domain: "example.com", ip: "93.184.215.14", port: 443, bytes: 4096 });
    expect(d.network?.bytes).toBe(4613);
    expect(d.event.duration).toBe(80_400_000);
    expect(d.http).toEqual({ request: { method: "CONNECT" }, response: { status_code: 200 } });
  });

  test("the validator refuses what ECS does not have", () => {
    const good = toEcs(bypass) as Record<string, any>;
    expect(ecsIssues({ ...good, process: { ...good.process, parent: { pid: 1, parent: { pid: 2 } } } })).toContain("process.parent.parent.pid: not an ECS field");
    expect(ecsIssues({ ...good, proxywall: { hint: "x" } })).toContain("proxywall.hint: not an ECS field");
    expect(ecsIssues({ ...good, event: { ...good.event, kind: "bypass" } }).join("\n")).toContain('event.kind: "bypass" is not one of');
    expect(ecsIssues({ ...good, event: { ...good.event, type: ["creation"] } })).toContain("event.type: creation is not expected with event.category network");
    expect(ecsIssues({ ...good, source: { port: "80" } })).toContain("source.port: is not an integer");
    expect(ecsIssues({ ...good, labels: { count: 3 } })).toContain("labels.count: a label is a keyword (string)");
    expect(ecsIssues({ ...good, destination: { ip: ["198.51.100.7"] } })).toContain("destination.ip: ECS does not make it an array");
    const { ecs: _, ...noVersion } = good;
    expect(ecsIssues(noVersion)).toContain("ecs.version: required by ECS, missing");
  });
});

describe("the README", () => {
  for (const format of ["ocsf", "ecs"] as const) {
    test(`its ${format} bypass line is the README's json line as the code maps it (but the product version)`, () => {
      const m = new RegExp("```json\\n(\\{[^\\n]*\\})\\n```", "g");
      const lines = [...README.matchAll(m)].map((x) => JSON.parse(x[1]!) as Record<string, any>);
      const shown = lines.find((l) => (format === "ocsf" ? "class_uid" in l : "ecs" in l));
      expect(shown).toBeDefined();
      const mapped = JSON.parse(eventFormat(format).line(README_BYPASS));
      if (format === "ocsf") mapped.metadata.product.version = shown!.metadata.product.version;
      else mapped.observer.version = shown!.observer.version;
      expect(shown).toEqual(mapped);
    });
  }
});

describe("writing the lines", () => {
  test("an EventWriter writes each line in its format; json stays proxywall's own line", () => {
    const dir = tempDir("proxywall-formats-test-");
    try {
      for (const name of EVENT_FORMATS) {
        const path = dir.path(`${name}.jsonl`);
        const w = openEventSink(path, name);
        if (typeof w === "string") throw new Error(w);
        for (const [, e] of EXAMPLES) w.write(e);
        const lines = readFileSync(path, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
        expect(lines).toHaveLength(EXAMPLES.length);
        if (name === "json") expect(lines[0]).toEqual(README_BYPASS);
        if (name === "ocsf") for (const l of lines) expect(ocsfIssues(l)).toEqual([]);
        if (name === "ecs") for (const l of lines) expect(ecsIssues(l)).toEqual([]);
      }
    } finally {
      dir.remove();
    }
  });

  test("the default writer is json", () => {
    expect(new EventWriter(2).format.name).toBe("json");
  });
});


describe("proxywall parse --event-format", () => {
  for (const fixture of ["kmsg-records.txt", "dmesg-lines.txt"]) {
    for (const format of ["ocsf", "ecs"] as const) {
      test(`${fixture} as ${format}: every line validates, one per json line`, async () => {
        const file = join(import.meta.dir, "fixtures", fixture);
        const [json, mapped] = await Promise.all([proxywall(["parse", file]), proxywall(["parse", "--event-format", format, file])]);
        expect(mapped.code).toBe(0);
        const own = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as EventLine);
        const lines = mapped.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
        expect(lines.length).toBe(own.length);
        expect(lines.length).toBeGreaterThan(0);
        for (const l of lines) expect(format === "ocsf" ? ocsfIssues(l) : ecsIssues(l)).toEqual([]);
        // The same events, but for the time each line was written.
        lines.forEach((l, i) => {
          const expected = JSON.parse(eventFormat(format).line({ ...own[i]!, ts: own[i]!.ts }));
          if (format === "ocsf") expect({ ...l, time: 0 }).toEqual({ ...expected, time: 0 });
          else expect({ ...l, "@timestamp": "" }).toEqual({ ...expected, "@timestamp": "" });
        });
      });
    }
  }

  test("a wrong format is a usage error (exit 2)", async () => {
    const r = await proxywall(["parse", "--event-format", "cef", "/dev/null"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--event-format: must be json, ocsf or ecs");
  });
});

describe("proxywall schema --event-format", () => {
  for (const format of EVENT_FORMATS) {
    test(`${format}: a JSON Schema`, async () => {
      const r = await proxywall(["schema", "--event-format", format]);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(String(s.$id)).toContain(format === "json" ? "events-v1" : `events-${format}`);
    });
  }

  test("no option: proxywall's own schema, as before", async () => {
    const [plain, json] = await Promise.all([proxywall(["schema"]), proxywall(["schema", "--event-format", "json"])]);
    expect(plain.stdout).toBe(json.stdout);
  });

  test("ocsf: one schema per class, the process recursive through parent_process", async () => {
    const s = JSON.parse((await proxywall(["schema", "--event-format", "ocsf"])).stdout);
    expect(s.anyOf.map((c: any) => c.properties.class_uid.const)).toEqual([4001, 4003, 6002]);
    expect(JSON.stringify(s.$defs)).toMatch(/"parent_process":\{"\$ref":"#\/\$defs\/\w+"\}/);
  });
});
