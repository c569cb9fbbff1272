// dnsQueryName (src/net/dns-query.ts) on built queries, malformed names and garbage.
import { describe, expect, test } from "bun:test";
import { dnsQuestion, dnsQueryName, refusedAnswer } from "../src/net/dns-query.ts";
import { dnsQuery } from "./support/packets.ts";
import { mulberry32 } from "./support/prng.ts";

describe("dnsQueryName", () => {
  test("UDP and TCP (length-prefixed) queries", () => {
    const q = Uint8Array.from(dnsQuery("bypass.example"));
    expect(dnsQueryName(q)).toBe("bypass.example");
    const tcp = Uint8Array.from([q.length >> 8, q.length & 255, ...q]);
    expect(dnsQueryName(tcp, true)).toBe("bypass.example");
    expect(dnsQueryName(q, true)).toBeNull(); // no prefix: garbage length
  });

  test("root name, case folding and escaping", () => {
    expect(dnsQueryName(Uint8Array.from(dnsQuery("")))).toBe(".");
    expect(dnsQueryName(Uint8Array.from(dnsQuery("ByPaSs.EXAMPLE")))).toBe("bypass.example");
    const q = [...dnsQuery("").slice(0, 12), 3, 0x61, 0x2e, 0x00, 2, 0x5c, 0x20, 0, 0, 1, 0, 1];
    expect(dnsQueryName(Uint8Array.from(q))).toBe("a\\.\\000.\\\\\\032");
  });

  test("malformed: no question, pointer, long label, too long, truncated", () => {
    const q = dnsQuery("bypass.example");
    const noQ = q.slice();
    noQ[5] = 0;
    expect(dnsQueryName(Uint8Array.from(noQ))).toBeNull();
    expect(dnsQueryName(Uint8Array.from([...q.slice(0, 12), 0xc0, 0x0c, 0, 1, 0, 1]))).toBeNull();
    expect(dnsQueryName(Uint8Array.from([...q.slice(0, 12), 64, ...new Array(64).fill(0x61), 0, 0, 1, 0, 1]))).toBeNull();
    const long = [...q.slice(0, 12)];
    for (let i = 0; i < 5; i++) long.push(63, ...new Array(63).fill(0x61));
    long.push(0, 0, 1, 0, 1);
    expect(dnsQueryName(Uint8Array.from(long))).toBeNull();
    for (let n = 0; n < q.length; n++) expect(dnsQueryName(Uint8Array.from(q.slice(0, n)))).toBeNull();
    expect(dnsQueryName(new Uint8Array(0), true)).toBeNull();
    expect(dnsQueryName(Uint8Array.of(0), true)).toBeNull();
  });

  test("random garbage never throws", () => {
    const next = mulberry32(42);
    for (let i = 0; i < 20000; i++) {
      const len = Math.floor(next() * 80);
      const b = new Uint8Array(len);
      for (let j = 0; j < len; j++) b[j] = next() < 0.3 ? Math.floor(next() * 8) : Math.floor(next() * 256);
      const name = dnsQueryName(b, next() < 0.3);
      if (name !== null) expect(name.length).toBeGreaterThan(0);
    }
  });
});

describe("dnsQuestion and refusedAnswer", () => {
  test("the type by name; REFUSED echoes id, opcode, RD and the question", () => {
    const q = Uint8Array.from(dnsQuery("Example.COM", 0xbeef));
    q[q.length - 3] = 28; // QTYPE AAAA
    expect(dnsQuestion(q)).toEqual({ name: "example.com", type: "AAAA", end: q.length });
    const a = refusedAnswer(q)!;
    expect([a[0], a[1], a[2], a[3], a[5], a[7], a[9], a[11]]).toEqual([0xbe, 0xef, 0x81, 5, 1, 0, 0, 0]);
    expect([...a.subarray(12)]).toEqual([...q.subarray(12)]);
    const t = Uint8Array.from(dnsQuery("x.test"));
    t[t.length - 3] = 0;
    t[t.length - 4] = 0xff; // 65280
    expect(dnsQuestion(t)?.type).toBe("TYPE65280");
  });

  test("no answer to an answer, or to a message without a question", () => {
    const q = Uint8Array.from(dnsQuery("a.test"));
    q[2] = q[2]! | 0x80;
    expect(refusedAnswer(q)).toBeNull();
    expect(refusedAnswer(new Uint8Array(12))).toBeNull();
  });
});
