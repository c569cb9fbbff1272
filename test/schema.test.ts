// The event schema (src/events/schema.ts) and the JSON Schema made from it (src/events/json-schema.ts):
// one example line of every kind validates, the README's example among them, and each wrong field
// is refused. Real lines are validated in the privileged tests and in test/parse-cli.test.ts.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { HINTS } from "../src/events/hints.ts";
import { eventJsonSchema } from "../src/events/json-schema.ts";
import { BypassDetect, BypassSummary, BypassTotals, Degraded, EventLine, ProxyConnect, REASON_BYPASS, SandboxClosed, SandboxReady } from "../src/events/schema.ts";
import { VERSION } from "../src/version.ts";

const head = { v: 1, ts: "2026-11-29T14:45:00.185Z", sandbox: "5419c89a" } as const;

/** The bypass line the README shows, as it stands there. */
const README_BYPASS = JSON.parse(/```json\n(\{"v":1,"event":"bypass_detect".*\})\n```/.exec(readFileSync(join(import.meta.dir, "../README.md"), "utf8"))![1]!) as Record<string, unknown>;

const EXAMPLES = {
  bypass_detect: README_BYPASS,
  bypass_summary: { ...head, event: "bypass_summary", proto: "tcp", dst_addr: "198.51.100.7", dst_port: 80, exe: "/usr/bin/curl", count: 3, first_seen: "2026-11-29T14:45:00.185Z", last_seen: "2026-11-29T14:45:02.001Z", final: false },
  bypass_totals: { ...head, event: "bypass_totals", tcp: 3, udp: 0, other: null, events: 3, lost: 0, final: true },
  degraded: { ...head, event: "degraded", component: "privileges", missing: "CMD runs as root", fix: "use --user", still_protected: "the rejects" },
  sandbox_ready: {
    ...head,
    event: "sandbox_ready",
    netns: "pw-5419c89a",
    sandbox_ipv4: "10.200.0.2",
    sandbox_ipv6: null,
    proxy: { url: "http://127.0.0.1:3128", port: 3128, builtin: true },
    backend: "nft",
    log: "nflog",
    monitor: "nflog",
    detection: "verified",
    degraded: [],
    setup_ms: 41.5,
  },
  sandbox_closed: { ...head, event: "sandbox_closed", exit_code: 7, cmd_exit_code: 7, cmd_signal: null, duration_ms: 312.25, cleanup: [] },
  proxy_connect: {
    ...head,
    event: "proxy_connect",
    method: "CONNECT",
    client_addr: "127.0.0.1",
    client_port: 40000,
    dst_host: "example.com",
    dst_addr: "203.0.113.10",
    dst_port: 443,
    status: 200,
    bytes_up: 517,
    bytes_down: 4096,
    duration_ms: 80,
    outcome: "ok",
    rule: "allow example.com:443",
    reason: null,
    error: null,
    process: { resolved: true, pid: 4242, exe: "/usr/bin/curl", cmdline: ["curl", "https://example.com/"], uid: 65534, start_time: "2026-11-29T14:45:00.100Z", ancestors: [], also_held_by: [] },
  },
} satisfies Record<EventLine["event"], Record<string, unknown>>;

const SCHEMAS = { bypass_detect: BypassDetect, bypass_summary: BypassSummary, bypass_totals: BypassTotals, degraded: Degraded, sandbox_ready: SandboxReady, sandbox_closed: SandboxClosed, proxy_connect: ProxyConnect } as const;

const issues = (schema: v.GenericSchema, x: unknown) => {
  const r = v.safeParse(schema, x);
  return r.success ? [] : r.issues.map((i) => `${i.path?.map((p) => String(p.key)).join(".") ?? ""}: ${i.message}`);
};

describe("every kind of event line", () => {
  for (const [kind, example] of Object.entries(EXAMPLES)) {
    test(`${kind}: the example validates, as its own kind and as an event line`, () => {
      expect(issues(SCHEMAS[kind as keyof typeof SCHEMAS], example)).toEqual([]);
      expect(issues(EventLine, example)).toEqual([]);
    });
  }

  test("the README's bypass line is the one this code writes: reason and hint", () => {
    expect(README_BYPASS).toMatchObject({ reason: REASON_BYPASS, hint: HINTS.tcp, source: "nfqueue", process: { resolved: true, exe: "/usr/bin/curl" } });
  });

  test("unresolved and null processes are valid too", () => {
    expect(issues(BypassDetect, { ...README_BYPASS, process: { resolved: false, why: "socket closed before lookup" } })).toEqual([]);
    expect(issues(BypassDetect, { ...README_BYPASS, process: null, source: "parse" })).toEqual([]);
  });
});

describe("wrong fields are refused", () => {
  const bad = (kind: keyof typeof EXAMPLES, change: Record<string, unknown>) => issues(EventLine, { ...EXAMPLES[kind], ...change });

  test("the common head: version, kind, timestamp, sandbox, extra keys", () => {
    for (const kind of Object.keys(EXAMPLES) as (keyof typeof EXAMPLES)[]) {
      expect({ kind, v: bad(kind, { v: 2 }).length }).toEqual({ kind, v: 1 });
      expect({ kind, ts: bad(kind, { ts: "2026-11-29T14:45:00Z" }).length }).toEqual({ kind, ts: 1 });
      expect({ kind, sandbox: bad(kind, { sandbox: "" }).length }).toEqual({ kind, sandbox: 1 });
      expect({ kind, extra: bad(kind, { extra: 1 }).length }).toEqual({ kind, extra: 1 });
    }
    expect(bad("degraded", { event: "no_such_event" }).length).toBeGreaterThan(0);
    const { ts: _, ...noTs } = EXAMPLES.degraded;
    expect(issues(EventLine, noTs)).toEqual(["ts: Invalid key: Expected \"ts\" but received undefined"]);
  });

  test("one wrong field per kind, reported at its path", () => {
    const cases: [keyof typeof EXAMPLES, Record<string, unknown>, string][] = [
      ["bypass_detect", { dst_port: 65536 }, "dst_port"],
      ["bypass_detect", { proto: "smtp" }, "proto"],
      ["bypass_detect", { action: "drop" }, "action"],
      ["bypass_detect", { uid: -1 }, "uid"],
      ["bypass_detect", { uid: 4294967296 }, "uid"],
      ["bypass_detect", { source: "pcap" }, "source"],
      ["bypass_detect", { reason: "other" }, "reason"],
      ["bypass_detect", { process: { resolved: true, pid: 0, exe: null, cmdline: [], uid: 0, start_time: null, ancestors: [], also_held_by: [] } }, "process.pid"],
      ["bypass_detect", { process: { resolved: false } }, "process.why"],
      ["bypass_summary", { count: 0 }, "count"],
      ["bypass_summary", { first_seen: "yesterday" }, "first_seen"],
      ["bypass_totals", { tcp: -1 }, "tcp"],
      ["bypass_totals", { events: 1.5 }, "events"],
      ["degraded", { fix: null }, "fix"],
      ["sandbox_ready", { detection: "maybe" }, "detection"],
      ["sandbox_ready", { backend: "pf" }, "backend"],
      ["sandbox_ready", { sandbox_ipv6: 6 }, "sandbox_ipv6"],
      ["sandbox_ready", { proxy: { url: "http://x", port: 3128 } }, "proxy.builtin"],
      ["sandbox_closed", { exit_code: 1.5 }, "exit_code"],
      ["proxy_connect", { outcome: "maybe" }, "outcome"],
      ["proxy_connect", { client_port: -1 }, "client_port"],
    ];
    for (const [kind, change, path] of cases) {
      const got = bad(kind, change);
      expect({ kind, change, paths: got.map((i) => i.slice(0, i.indexOf(":"))) }).toEqual({ kind, change, paths: [path] });
    }
  });
});

describe("eventJsonSchema", () => {
  const schema = eventJsonSchema();
  type Branch = { type: string; properties: Record<string, Record<string, unknown>>; required: string[]; additionalProperties: boolean };
  const branches = schema.oneOf as Branch[];

  test("names itself and this version", () => {
    expect(schema).toMatchObject({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://proxywall.dev/schema/events-v1.json",
      title: `proxywall event line (v1, proxywall ${VERSION})`,
    });
  });

  test("one closed object per kind, every key required, the keys the examples have", () => {
    expect(branches.map((b) => b.properties.event)).toEqual(Object.keys(EXAMPLES).map((k) => ({ const: k })));
    for (const b of branches) {
      const kind = b.properties.event!.const as keyof typeof EXAMPLES;
      expect({ kind, type: b.type, additionalProperties: b.additionalProperties }).toEqual({ kind, type: "object", additionalProperties: false });
      // dns_type is the one key lines of earlier versions lack.
      expect({ kind, required: [...b.required].sort() }).toEqual({ kind, required: Object.keys(b.properties).filter((k) => k !== "dns_type").sort() });
      expect({ kind, keys: Object.keys(b.properties).filter((k) => k in EXAMPLES[kind] || k !== "dns_type").sort() }).toEqual({ kind, keys: Object.keys(EXAMPLES[kind]).sort() });
    }
  });

  test("the timestamp pattern accepts the examples' times and refuses others", () => {
    const pattern = new RegExp(branches[0]!.properties.ts!.pattern as string);
    expect(pattern.test(head.ts)).toBe(true);
    expect(pattern.test("2026-11-29T14:45:00Z")).toBe(false);
    expect(pattern.test("2026-11-29 14:45:00.185Z")).toBe(false);
  });
});
