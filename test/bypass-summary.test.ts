// Counting bypass attempts per (proto, destination, executable): src/monitor/bypass-summary.ts.
import { describe, expect, test } from "bun:test";
import { bypassEvent } from "../src/events/bypass-event.ts";
import type { BypassDetect } from "../src/events/schema.ts";
import { BypassSummarizer, MAX_KEYS } from "../src/monitor/bypass-summary.ts";

function attempt(proto: "tcp" | "udp", dstAddr: string, dstPort: number, exe: string | null, ts: string): BypassDetect {
  const e = bypassEvent({ sandbox: "5419c89a", source: "nflog" }, { proto, family: "ipv4", srcAddr: "10.200.0.2", srcPort: 40000, dstAddr, dstPort, uid: 0, gid: 0, outIf: null }, null);
  const process: BypassDetect["process"] =
    exe === null
      ? { resolved: false, why: "the socket was already closed when proxywall looked (a short-lived UDP client)" }
      : { resolved: true, pid: 100, exe, cmdline: [exe], uid: 0, start_time: null, ancestors: [], also_held_by: [] };
  return { ...e, ts, process };
}

describe("BypassSummarizer", () => {
  test("one line per (proto, destination, executable), with count and first and last seen", () => {
    const s = new BypassSummarizer();
    s.add(attempt("tcp", "198.51.100.7", 443, "/usr/bin/curl", "2026-11-30T10:00:00.000Z"));
    s.add(attempt("tcp", "198.51.100.7", 443, "/usr/bin/curl", "2026-11-30T10:00:01.000Z"));
    s.add(attempt("tcp", "198.51.100.7", 443, "/usr/bin/wget", "2026-11-30T10:00:02.000Z"));
    s.add(attempt("udp", "198.51.100.7", 443, "/usr/bin/curl", "2026-11-30T10:00:03.000Z"));
    s.add(attempt("udp", "198.51.100.53", 53, null, "2026-11-30T10:00:04.000Z"));
    const lines = s.lines("5419c89a", true);
    expect(s.events).toBe(5);
    expect(lines.map(({ proto, dst_addr, dst_port, exe, count, first_seen, last_seen }) => ({ proto, dst_addr, dst_port, exe, count, first_seen, last_seen }))).toEqual([
      { proto: "tcp", dst_addr: "198.51.100.7", dst_port: 443, exe: "/usr/bin/curl", count: 2, first_seen: "2026-11-30T10:00:00.000Z", last_seen: "2026-11-30T10:00:01.000Z" },
      { proto: "tcp", dst_addr: "198.51.100.7", dst_port: 443, exe: "/usr/bin/wget", count: 1, first_seen: "2026-11-30T10:00:02.000Z", last_seen: "2026-11-30T10:00:02.000Z" },
      { proto: "udp", dst_addr: "198.51.100.7", dst_port: 443, exe: "/usr/bin/curl", count: 1, first_seen: "2026-11-30T10:00:03.000Z", last_seen: "2026-11-30T10:00:03.000Z" },
      { proto: "udp", dst_addr: "198.51.100.53", dst_port: 53, exe: null, count: 1, first_seen: "2026-11-30T10:00:04.000Z", last_seen: "2026-11-30T10:00:04.000Z" },
    ]);
    expect(lines.every((l) => l.event === "bypass_summary" && l.sandbox === "5419c89a" && l.final && l.v === 1)).toBe(true);
  });

  test("a periodic summary names only what was counted since the last one; the final one names everything", () => {
    const s = new BypassSummarizer();
    s.add(attempt("tcp", "198.51.100.7", 80, "/usr/bin/curl", "2026-11-30T10:00:00.000Z"));
    s.add(attempt("tcp", "198.51.100.8", 80, "/usr/bin/curl", "2026-11-30T10:00:00.500Z"));
    expect(s.lines("x", false).map((l) => [l.dst_addr, l.count, l.final])).toEqual([
      ["198.51.100.7", 1, false],
      ["198.51.100.8", 1, false],
    ]);
    expect(s.lines("x", false)).toEqual([]);
    s.add(attempt("tcp", "198.51.100.8", 80, "/usr/bin/curl", "2026-11-30T10:00:01.000Z"));
    expect(s.lines("x", false).map((l) => [l.dst_addr, l.count])).toEqual([["198.51.100.8", 2]]);
    expect(s.lines("x", true).map((l) => [l.dst_addr, l.count])).toEqual([
      ["198.51.100.7", 1],
      ["198.51.100.8", 2],
    ]);
  });

  test(`beyond ${MAX_KEYS} keys (a port scan) new keys count under "*", port 0; known keys go on counting apart`, () => {
    const s = new BypassSummarizer();
    const ts = "2026-11-30T10:00:00.000Z";
    for (let port = 1; port <= MAX_KEYS; port++) s.add(attempt("tcp", "198.51.100.7", port, null, ts));
    s.add(attempt("tcp", "198.51.100.7", MAX_KEYS + 1, null, ts));
    s.add(attempt("tcp", "198.51.100.9", 22, "/usr/bin/ssh", "2026-11-30T10:00:05.000Z"));
    s.add(attempt("tcp", "198.51.100.7", 1, null, ts));
    const lines = s.lines("x", true);
    expect(lines.length).toBe(MAX_KEYS + 1);
    expect(lines.find((l) => l.dst_port === 1)!.count).toBe(2);
    expect(lines.find((l) => l.dst_addr === "*")).toMatchObject({ proto: "tcp", dst_port: 0, exe: null, count: 2, first_seen: ts, last_seen: "2026-11-30T10:00:05.000Z" });
    expect(s.events).toBe(MAX_KEYS + 3);
  });
});
