// aggregate.ts: the fixture's two real sandboxes summarised; lines that are not events counted and
// skipped; outcomes of any name; every structure bounded.
import { describe, expect, test } from "bun:test";
import { LIMITS, ReportAggregator, parseEventLine } from "../src/report/aggregate.ts";
import { DETAIL_ITEMS } from "../src/report/timeline.ts";
import type { EventLine } from "../src/events/schema.ts";
import { FIXTURE_TEXT, fixtureEvents } from "./support/report-fixture.ts";

function aggregate(text: string) {
  const a = new ReportAggregator();
  text.split("\n").forEach((l, i) => a.addLine(l, () => `f:${i + 1}`));
  return a.report();
}

const first = <T extends EventLine["event"]>(kind: T) => structuredClone(fixtureEvents().find((e) => e.event === kind)!) as Extract<EventLine, { event: T }>;

describe("aggregate", () => {
  test("the fixture: two sandboxes, their bypasses, proxy requests, degraded parts and hints", () => {
    const r = aggregate(FIXTURE_TEXT);
    expect(r.skipped.count).toBe(0);
    expect(r.events).toBe(r.lines);
    expect(r.sandboxes.map((s) => s.id).sort()).toEqual(["23cc76a9", "b2617656"]);
    const a = r.sandboxes.find((s) => s.id === "23cc76a9")!;
    const b = r.sandboxes.find((s) => s.id === "b2617656")!;
    expect(a.bypass).toEqual({ events: 3, tcp: 2, udp: 1, observed: 0 });
    expect(b.bypass).toEqual({ events: 2, tcp: 1, udp: 1, observed: 0 });
    // curl under dash, and curl under dash under dash, are two programs.
    expect(a.programs.map((p) => [p.exe, p.ancestors.length]).sort()).toEqual([["/usr/bin/curl", 1], ["/usr/bin/curl", 2], ["/usr/bin/python3.11", 1]]);
    expect(b.programs.find((p) => p.exe === "/usr/bin/python3.11")!.dests[0]).toMatchObject({ proto: "udp", port: 53, dnsQueries: ["example.com"] });
    expect(a.proxy).toMatchObject({ requests: 3, allowed: 2, refused: 1 });
    expect(a.proxy.dests[0]).toMatchObject({ host: "127.0.0.1", port: 1, outcome: "connect_failed", allowed: false, statuses: [502] });
    expect(a.proxy.dests[1]!.methods.sort()).toEqual(["CONNECT", "GET"]);
    expect(a.degraded.map((d) => d.component)).toEqual(["privileges"]);
    expect(b.degraded).toEqual([]);
    expect(a.ready?.detection).toBe("verified");
    expect(a.closed?.cmd_exit_code).toBe(0);
    expect(a.totals).toMatchObject({ tcp: 2, udp: 1, final: true });
    expect(a.hints.map((h) => h.count).reduce((x, y) => x + y)).toBe(3);
    expect(a.timeline.detail.map((d) => d.kind).sort()).toEqual(["allowed", "allowed", "bypass", "bypass", "bypass", "refused"]);
  });

  test("lines that are not proxywall events are counted and skipped; the first is named", () => {
    const r = aggregate(["not json", "", "[1,2]", '{"event":"something_else","v":1}', '{"v":2,"event":"degraded"}', FIXTURE_TEXT].join("\n"));
    expect(r.skipped.count).toBe(4);
    expect(r.skipped.first).toBe("f:1: not JSON");
    expect(r.sandboxes.length).toBe(2);
  });

  test("a line with a wrong field is skipped with the field's name", () => {
    const bad = { ...first("bypass_detect"), dst_port: 70000 };
    expect(parseEventLine(JSON.stringify(bad))).toMatch(/^bypass_detect: dst_port /);
    const extra = { ...first("degraded"), surprise: 1 };
    expect(typeof parseEventLine(JSON.stringify(extra))).toBe("string");
  });

  test("a missing field that the schema does not allow as null is not filled in", () => {
    const { hint: _, ...noHint } = first("bypass_detect");
    expect(parseEventLine(JSON.stringify(noHint))).toMatch(/hint/);
  });

  test("proxy outcomes of any name: ok is allowed, anything else refused, with its rule", () => {
    const a = new ReportAggregator();
    const base = first("proxy_connect");
    a.addEvent({ ...base, outcome: "denied", rule: "deny-metadata", status: 403 } as unknown as EventLine);
    a.addEvent({ ...base, outcome: "would_deny", rule: "audit-x" } as unknown as EventLine);
    a.addEvent({ ...base, outcome: "ok" } as EventLine);
    const s = a.report().sandboxes[0]!;
    expect(s.proxy).toMatchObject({ requests: 3, allowed: 1, refused: 2 });
    expect(s.proxy.dests.filter((d) => !d.allowed).map((d) => [d.outcome, d.rules])).toEqual([["denied", ["deny-metadata"]], ["would_deny", ["audit-x"]]]);
  });

  test("observed (monitor) attempts and unattributed ones", () => {
    const a = new ReportAggregator();
    const base = first("bypass_detect");
    a.addEvent({ ...base, action: "observe", process: { resolved: false, why: "socket already closed" } });
    a.addEvent({ ...base, process: null });
    const s = a.report().sandboxes[0]!;
    expect(s.bypass.observed).toBe(1);
    expect(s.programs.map((p) => [p.exe, p.why])).toEqual([[null, "socket already closed"], [null, "not attributed"]]);
  });

  test("bounded: programs, destinations, proxy destinations, pids, timeline", () => {
    const a = new ReportAggregator();
    const bd = first("bypass_detect");
    const pc = first("proxy_connect");
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const p = bd.process as Extract<typeof bd.process, { resolved: true }>;
      a.addEvent({ ...bd, dst_port: i % 1000, process: { ...p, pid: 1 + i, exe: `/bin/p${i % 700}` } });
      a.addEvent({ ...pc, dst_host: `h${i}.example` });
    }
    const s = a.report().sandboxes[0]!;
    expect(s.programs.length).toBe(LIMITS.programs + 1);
    expect(s.programs.reduce((x, p) => x + p.attempts, 0)).toBe(n);
    expect(s.programs.find((p) => p.why?.startsWith("more than"))).toBeDefined();
    for (const p of s.programs) expect(p.dests.length).toBeLessThanOrEqual(LIMITS.destsPerProgram + 1);
    expect(Math.max(...s.programs.map((p) => p.pids))).toBeLessThanOrEqual(LIMITS.pids);
    expect(s.proxy.dests.length).toBe(LIMITS.proxyDests + 1);
    expect(s.proxy.dests.reduce((x, d) => x + d.count, 0)).toBe(n);
    expect(s.timeline.detail.length).toBe(DETAIL_ITEMS);
    expect(s.timeline.notDetailed).toBe(2 * n - DETAIL_ITEMS);
  });

  test("sandboxes beyond the limit are counted, not kept", () => {
    const a = new ReportAggregator();
    const d = first("degraded");
    for (let i = 0; i < LIMITS.sandboxes + 5; i++) a.addEvent({ ...d, sandbox: `s${i}` });
    const r = a.report();
    expect(r.sandboxes.length).toBe(LIMITS.sandboxes);
    expect(r.otherSandboxLines).toBe(5);
  });
});
