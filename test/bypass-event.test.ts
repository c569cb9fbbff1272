// The bypass_detect line built from decoded packet fields (src/events/bypass-event.ts): the event's
// exact fields and key order, its timestamp, and that it is valid against the schema. The encoder
// (bypassEventLine) is compared with JSON.stringify in test/kernel-log.test.ts.
import { afterEach, describe, expect, test, setSystemTime } from "bun:test";
import * as v from "valibot";
import { bypassEvent, bypassEventLine, nowTs } from "../src/events/bypass-event.ts";
import { HINTS } from "../src/events/hints.ts";
import { BypassDetect, REASON_BYPASS } from "../src/events/schema.ts";
import type { PacketFields } from "../src/kernel-log/log-fields.ts";

afterEach(() => {
  setSystemTime();
});

const TCP: PacketFields = { proto: "tcp", family: "ipv4", srcAddr: "10.200.0.2", srcPort: 47578, dstAddr: "198.51.100.7", dstPort: 80, uid: 0, gid: 0, outIf: null };

describe("nowTs", () => {
  test("RFC 3339 UTC with milliseconds, of the clock now", () => {
    setSystemTime(new Date("2026-11-29T14:45:00.185Z"));
    expect(nowTs()).toBe("2026-11-29T14:45:00.185Z");
    setSystemTime(new Date(Date.UTC(2027, 0, 2, 3, 4, 5, 6)));
    expect(nowTs()).toBe("2027-01-02T03:04:05.006Z");
  });

  test("follows the clock from one millisecond to the next, and back", () => {
    setSystemTime(new Date("2026-11-29T14:45:00.999Z"));
    expect(nowTs()).toBe("2026-11-29T14:45:00.999Z");
    setSystemTime(new Date("2026-11-29T14:45:01.000Z"));
    expect(nowTs()).toBe("2026-11-29T14:45:01.000Z");
    setSystemTime(new Date("2026-11-29T14:45:00.999Z"));
    expect(nowTs()).toBe("2026-11-29T14:45:00.999Z");
  });
});

describe("bypassEvent", () => {
  test("every field, in the order lines are written (the README's example)", () => {
    setSystemTime(new Date("2026-11-29T14:45:00.185Z"));
    const e = bypassEvent({ sandbox: "5419c89a", source: "nfqueue" }, TCP, null);
    expect(Object.entries(e)).toEqual([
      ["v", 1],
      ["event", "bypass_detect"],
      ["ts", "2026-11-29T14:45:00.185Z"],
      ["sandbox", "5419c89a"],
      ["action", "reject"],
      ["proto", "tcp"],
      ["family", "ipv4"],
      ["src_addr", "10.200.0.2"],
      ["src_port", 47578],
      ["dst_addr", "198.51.100.7"],
      ["dst_port", 80],
      ["uid", 0],
      ["gid", 0],
      ["out_if", null],
      ["process", null],
      ["dns_query", null],
      ["reason", REASON_BYPASS],
      ["hint", HINTS.tcp],
      ["source", "nfqueue"],
      ["log_time", null],
    ]);
    expect(v.safeParse(BypassDetect, e).success).toBe(true);
  });

  test("fields pass through as decoded, nulls included; log time is kept as found", () => {
    setSystemTime(new Date("2026-11-29T14:45:00.185Z"));
    const udp6: PacketFields = { proto: "udp", family: "ipv6", srcAddr: null, srcPort: null, dstAddr: "2001:db8::53", dstPort: 53, uid: null, gid: null, outIf: "pws5419c89a" };
    const e = bypassEvent({ sandbox: "5419c89a", source: "kmsg" }, udp6, "1316.057048");
    expect(e).toMatchObject({ proto: "udp", family: "ipv6", src_addr: null, src_port: null, dst_addr: "2001:db8::53", dst_port: 53, uid: null, gid: null, out_if: "pws5419c89a", hint: HINTS.dnsUdp, source: "kmsg", log_time: "1316.057048" });
    expect(v.safeParse(BypassDetect, e).success).toBe(true);
  });

  test("the context's proxy chooses the wrong-port hint", () => {
    const proxy = { addrs: ["10.200.0.1"], port: 3128 };
    const toProxyHost = { ...TCP, dstAddr: "10.200.0.1", dstPort: 8080 };
    expect(bypassEvent({ sandbox: "5419c89a", source: "nflog", proxy }, toProxyHost, null).hint).toBe(HINTS.wrongProxyPort);
    expect(bypassEvent({ sandbox: "5419c89a", source: "nflog" }, toProxyHost, null).hint).toBe(HINTS.tcp);
  });

  test("the encoder's bound holds for the longest values a line can carry", () => {
    const wide = "\u0001".repeat(300); // 6 bytes each as JSON
    const e = {
      ...bypassEvent({ sandbox: wide, source: "parse" }, { ...TCP, srcAddr: wide, outIf: wide }, wide),
      process: { resolved: false as const, why: "€".repeat(100) },
      uid: 4294967295,
      dns_query: wide,
    };
    const buf = new Uint8Array(bypassEventLine.maxBytes(e));
    const end = bypassEventLine.encode(e, buf, 0);
    expect(new TextDecoder().decode(buf.subarray(0, end))).toBe(JSON.stringify(e));
  });
});
