// The kernel-log parser piece by piece (envelopes, LOG fields, prefixes, line splitting) and as a
// whole over the captured fixtures and over garbage.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import path from "node:path";
import * as v from "valibot";
import { kernelRecord } from "../src/kernel-log/kmsg-record.ts";
import { parseLogFields, type PacketFields } from "../src/kernel-log/log-fields.ts";
import { anySandboxPrefix, exactPrefix, IPTABLES_PREFIX_MAX, sandboxLogPrefix, type PrefixMatcher } from "../src/kernel-log/log-prefix.ts";
import { LineSplitter, MAX_LINE } from "../src/kernel-log/line-splitter.ts";
import { ByteLineSplitter } from "../src/kernel-log/byte-line-splitter.ts";
import { KernelLogParser, type ParseStats } from "../src/kernel-log/log-parser.ts";
import { bypassEvent, bypassEventLine } from "../src/events/bypass-event.ts";
import { HINTS, bypassHint } from "../src/events/hints.ts";
import { BypassDetect } from "../src/events/schema.ts";
import { canonicalIPv6 } from "../src/net/ip-address.ts";
import { mulberry32 } from "./support/prng.ts";

const FIXTURES = path.join(import.meta.dir, "fixtures");
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), "utf8");

// The same records as the fixtures, by hand, for building other envelopes around them.
const MSG_UDP_V4 =
  "proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=10.210.0.1 LEN=57 TOS=0x00 PREC=0x00 TTL=64 ID=65004 DF PROTO=UDP SPT=35637 DPT=53 LEN=37 UID=0 GID=0 ";
const MSG_TCP_V6 =
  "proxywall:abcd1234:IN= OUT=vs-cap SRC=fd00:0210:0000:0000:0000:0000:0000:0002 DST=fd00:0210:0000:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=664970 PROTO=TCP SPT=42198 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 UID=0 GID=0 ";
const MSG_TCP_V4 =
  "proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=12515 DF PROTO=TCP SPT=51922 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 UID=65534 GID=65534 ";
const MSG_TRUNCATED =
  "openshell:bypass:sandbox-abcdIN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=12515 DF PROTO=TCP SPT=51922 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 UID=65534 GID=65534 ";
const LONG_PREFIX = "openshell:bypass:sandbox-abcd1234:";

interface Parsed {
  events: BypassDetect[];
  stats: ParseStats;
}

/** Runs the parser over text, pushed in chunks of `chunk` characters (all at once by default). */
function parse(text: string, opts: { matcher?: PrefixMatcher; proxy?: { addrs: string[]; port: number }; chunk?: number } = {}): Parsed {
  const events: BypassDetect[] = [];
  const p = new KernelLogParser({
    matcher: opts.matcher ?? anySandboxPrefix(),
    source: "parse",
    proxy: opts.proxy,
    onEvent: (e) => events.push(e),
  });
  const step = opts.chunk ?? Math.max(1, text.length);
  for (let at = 0; at < text.length; at += step) p.push(text.slice(at, at + step));
  p.end();
  for (const e of events) v.parse(BypassDetect, e);
  return { events, stats: p.stats() };
}

/** The decoded fields of an event, without the parts that do not come from the record. */
const fieldsOf = (e: BypassDetect) => {
  const { ts: _ts, reason: _r, hint: _h, v: _v, event: _e, action: _a, process: _p, dns_query: _d, source: _s, ...rest } = e;
  return rest;
};

describe("kernelRecord: envelopes", () => {
  test("/dev/kmsg record", () => {
    expect(kernelRecord(`4,12377,1180427454,-;${MSG_UDP_V4}`)).toEqual({ format: "kmsg", logTime: "1180.427454", message: MSG_UDP_V4 });
  });

  test("/dev/kmsg with a caller field, small timestamps, 3-digit priority", () => {
    expect(kernelRecord("6,1,0,-;hello")).toEqual({ format: "kmsg", logTime: "0.000000", message: "hello" });
    expect(kernelRecord("4,99,1234,c,caller=T1234;x")).toEqual({ format: "kmsg", logTime: "0.001234", message: "x" });
    expect(kernelRecord("134,5,1000000,-;y")).toEqual({ format: "kmsg", logTime: "1.000000", message: "y" });
  });

  test("not a kmsg header: kept whole as plain text", () => {
    for (const line of ["1234,1,2,-;x", "4,,1,-;x", "4,1,,-;x", "4,1,2;x", "4,1,2,-x", "4 ,1,2,-;x", "404 not found"]) {
      expect({ line, r: kernelRecord(line) }).toEqual({ line, r: { format: "plain", logTime: null, message: line } });
    }
  });

  test("kmsg continuation lines and wrapped text are not records", () => {
    expect(kernelRecord(" SUBSYSTEM=usb")).toBeNull();
    expect(kernelRecord(" DEVICE=c189:1")).toBeNull();
    expect(kernelRecord("\tcontinued")).toBeNull();
  });

  test("dmesg", () => {
    expect(kernelRecord(`[ 1180.427454] ${MSG_UDP_V4}`)).toEqual({ format: "dmesg", logTime: "1180.427454", message: MSG_UDP_V4 });
    expect(kernelRecord(`[    0.000000] Linux version`)).toEqual({ format: "dmesg", logTime: "0.000000", message: "Linux version" });
    expect(kernelRecord(`[123456.000001] x`)).toEqual({ format: "dmesg", logTime: "123456.000001", message: "x" });
  });

  test("dmesg -T (human time)", () => {
    expect(kernelRecord(`[Sun Nov 29 13:36:53 2026] ${MSG_TCP_V4}`)).toEqual({
      format: "dmesg",
      logTime: "Sun Nov 29 13:36:53 2026",
      message: MSG_TCP_V4,
    });
  });

  test("dmesg --notime: the message alone", () => {
    expect(kernelRecord(MSG_TCP_V4)).toEqual({ format: "plain", logTime: null, message: MSG_TCP_V4 });
  });

  test("dmesg --raw: priority, with and without the timestamp", () => {
    expect(kernelRecord(`<4>${MSG_TCP_V4}`)).toEqual({ format: "plain", logTime: null, message: MSG_TCP_V4 });
    expect(kernelRecord(`<4>[ 1316.057048] ${MSG_TCP_V4}`)).toEqual({ format: "dmesg", logTime: "1316.057048", message: MSG_TCP_V4 });
    expect(kernelRecord(`<12>[Sun Nov 29 13:36:53 2026] x`)).toEqual({ format: "dmesg", logTime: "Sun Nov 29 13:36:53 2026", message: "x" });
    expect(kernelRecord(`<1234>x`)).toEqual({ format: "plain", logTime: null, message: "<1234>x" });
  });

  test("journalctl -k / syslog", () => {
    expect(kernelRecord(`Nov 29 13:36:53 host kernel: ${MSG_TCP_V4}`)).toEqual({ format: "syslog", logTime: "Nov 29 13:36:53", message: MSG_TCP_V4 });
    // single-digit days are padded with a space
    expect(kernelRecord(`Nov  9 03:06:05 build-07 kernel: ${MSG_TCP_V4}`)).toEqual({ format: "syslog", logTime: "Nov  9 03:06:05", message: MSG_TCP_V4 });
  });

  test("journalctl -o short-iso and short-iso-precise", () => {
    expect(kernelRecord(`2026-11-29T13:36:53+0100 host kernel: ${MSG_TCP_V4}`)).toEqual({
      format: "syslog",
      logTime: "2026-11-29T13:36:53+0100",
      message: MSG_TCP_V4,
    });
    expect(kernelRecord(`2026-11-29T13:36:53.123456+01:00 host kernel: x`)).toEqual({
      format: "syslog",
      logTime: "2026-11-29T13:36:53.123456+01:00",
      message: "x",
    });
  });

  test("classic syslog keeps the dmesg stamp after kernel:", () => {
    expect(kernelRecord(`Nov 29 13:36:53 host kernel: [ 123.45] ${MSG_TCP_V4}`)).toEqual({
      format: "syslog",
      logTime: "Nov 29 13:36:53",
      message: MSG_TCP_V4,
    });
  });

  test("syslog lines of other programs are plain text", () => {
    const line = "Nov 29 13:36:53 host sshd[812]: Accepted publickey for root";
    expect(kernelRecord(line)).toEqual({ format: "plain", logTime: null, message: line });
  });
});

describe("parseLogFields", () => {
  test("IPv4 UDP: the first LEN counts, UID/GID and OUT are read", () => {
    const r = parseLogFields(MSG_UDP_V4.slice("proxywall:abcd1234:".length));
    expect(r).toEqual({
      ok: true,
      fields: { proto: "udp", family: "ipv4", srcAddr: "10.210.0.2", srcPort: 35637, dstAddr: "10.210.0.1", dstPort: 53, uid: 0, gid: 0, outIf: "vs-cap" },
    });
  });

  test("IPv6 TCP: addresses in RFC 5952 form", () => {
    const r = parseLogFields(MSG_TCP_V6.slice("proxywall:abcd1234:".length));
    expect(r).toEqual({
      ok: true,
      fields: { proto: "tcp", family: "ipv6", srcAddr: "fd00:210::2", srcPort: 42198, dstAddr: "fd00:210::1", dstPort: 443, uid: 0, gid: 0, outIf: "vs-cap" },
    });
  });

  test("without --log-uid: no UID/GID", () => {
    const r = parseLogFields("IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 PROTO=TCP SPT=1 DPT=443 SYN URGP=0");
    expect(r.ok && r.fields).toMatchObject({ uid: null, gid: null, srcPort: 1 });
  });

  test("the first of a repeated key counts", () => {
    const r = parseLogFields("IN= OUT=a SRC=10.0.0.1 DST=10.0.0.2 PROTO=UDP SPT=1 DPT=2 DPT=3 OUT=b DST=10.0.0.9 UID=5 UID=6");
    expect(r.ok && r.fields).toMatchObject({ dstAddr: "10.0.0.2", dstPort: 2, outIf: "a", uid: 5 });
  });

  test("values: ports up to 65535, ids up to 2^32-1, empty OUT is null", () => {
    const ok = parseLogFields("IN= OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=0 DPT=65535 UID=4294967295 GID=00007");
    expect(ok.ok && ok.fields).toMatchObject({ srcPort: 0, dstPort: 65535, uid: 4294967295, gid: 7, outIf: null });
    const bad = parseLogFields("IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=65536 DPT=443 UID=4294967296 GID=-1");
    expect(bad.ok && bad.fields).toMatchObject({ srcPort: null, dstPort: 443, uid: null, gid: null });
  });

  test("without DST or DPT, or with one that does not parse: incomplete", () => {
    for (const text of [
      "IN= OUT=x SRC=10.0.0.1 PROTO=TCP SPT=1 DPT=443",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=1",
      "IN= OUT=x SRC=10.0.0.1 DST= PROTO=TCP SPT=1 DPT=443",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=1 DPT=",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=1 DPT=65536",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=1 DPT=44x",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.256 PROTO=TCP SPT=1 DPT=443",
      "IN= OUT=x SRC=10.0.0.1 DST=fd00::1::2 PROTO=TCP SPT=1 DPT=443",
      "IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 SPT=1 DPT=443",
      // SRC and DST of different families
      "IN= OUT=x SRC=fd00::1 DST=10.0.0.2 PROTO=TCP SPT=1 DPT=443",
      "",
    ]) {
      expect({ text, r: parseLogFields(text) }).toEqual({ text, r: { ok: false, why: "incomplete" } });
    }
  });

  test("IPv6 addresses seen before (remembered) come out the same as new ones", () => {
    let seed = 3;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const addrs = Array.from({ length: 500 }, () =>
      Array.from({ length: 8 }, () => (next() % 2 ? 0 : next() & 0xffff).toString(16).padStart(4, next() % 2 ? "0" : "")).join(":"),
    );
    addrs.push("fd00:0210:0000:0000:0000:0000:0000:0001", "fd00:210::1", "FD00:210::1", "fd00::210:0:1", "fd00:0210:0000:0000:0000:0000:0000:000x");
    for (let round = 0; round < 3; round++) {
      for (const a of addrs) {
        const r = parseLogFields(`IN= OUT=x SRC=${a} DST=${a} PROTO=TCP SPT=1 DPT=2`);
        const want = canonicalIPv6(a);
        expect({ a, r: r.ok ? [r.fields.srcAddr, r.fields.dstAddr] : null }).toEqual({ a, r: want === null ? null : [want, want] });
      }
    }
  });

  test("other protocols", () => {
    for (const proto of ["ICMP", "ICMPv6", "47", "SCTP", "tcp"]) {
      const r = parseLogFields(`IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 LEN=84 PROTO=${proto} TYPE=8 CODE=0 ID=1 SEQ=1`);
      expect({ proto, r }).toEqual({ proto, r: { ok: false, why: "other_proto" } });
    }
  });
});

describe("prefix matchers", () => {
  const rest = MSG_TCP_V4.slice("proxywall:abcd1234:".length);

  test("any proxywall sandbox: proxywall:<8 hex>:IN=", () => {
    const m = anySandboxPrefix();
    expect(m.marker).toBe("proxywall:");
    expect(m.match(MSG_TCP_V4)).toEqual({ sandbox: "abcd1234", rest });
    expect(m.match(`proxywall:0f1e2d3c:${rest}`)).toEqual({ sandbox: "0f1e2d3c", rest });
    for (const bad of [
      `proxywall:ABCD1234:${rest}`, // ids are lower case
      `proxywall:abcd123:${rest}`,
      `proxywall:abcd12345:${rest}`,
      `proxywall:abcd123g:${rest}`,
      `proxywall:abcd1234${rest}`,
      `proxywall:abcd1234: ${rest}`, // a prefix not followed by IN=
      `proxywall:abcd1234:OUT=vs-cap`,
      `xproxywall:abcd1234:${rest}`,
      MSG_TRUNCATED,
      "proxywall: starting sandbox abcd1234",
    ]) {
      expect({ bad, m: m.match(bad) }).toEqual({ bad, m: null });
    }
  });

  test("sandboxLogPrefix fits the iptables limit", () => {
    expect(sandboxLogPrefix("abcd1234")).toBe("proxywall:abcd1234:");
    expect(sandboxLogPrefix("abcd1234").length).toBeLessThanOrEqual(IPTABLES_PREFIX_MAX);
  });

  test("exact prefix: its own sandbox only", () => {
    const m = exactPrefix("proxywall:abcd1234:");
    expect(m.match(MSG_TCP_V4)).toEqual({ sandbox: "abcd1234", rest });
    // wrong sandbox id
    expect(exactPrefix("proxywall:deadbeef:").match(MSG_TCP_V4)).toBeNull();
    // a prefix not followed by IN=
    expect(m.match(`proxywall:abcd1234: IN= OUT=x`)).toBeNull();
    expect(m.match(`proxywall:abcd1234:X IN=`)).toBeNull();
  });

  test("a prefix longer than 29 characters also matches its iptables truncation", () => {
    expect(LONG_PREFIX.length).toBe(34);
    const m = exactPrefix(LONG_PREFIX);
    expect(m.marker).toBe("openshell:bypass:sandbox-abcd");
    expect(m.marker.length).toBe(IPTABLES_PREFIX_MAX);
    // the sandbox is named by the prefix given, not the truncated text
    expect(m.match(MSG_TRUNCATED)).toEqual({ sandbox: "openshell:bypass:sandbox-abcd1234", rest });
    // the full prefix too (nft and NFLOG do not truncate at 29)
    expect(m.match(`${LONG_PREFIX}${rest}`)).toEqual({ sandbox: "openshell:bypass:sandbox-abcd1234", rest });
    // but not some other truncation
    expect(m.match(`openshell:bypass:sandbox-abcd12${rest}`)).toBeNull();
    expect(m.match(`openshell:bypass:sandbox-abcIN= ${rest}`)).toBeNull();
  });

  test("a prefix of 29 characters or fewer is matched exactly, never shortened", () => {
    const p29 = "openshell:bypass:sandbox-abcd";
    expect(p29.length).toBe(29);
    expect(exactPrefix(p29).match(MSG_TRUNCATED)).toEqual({ sandbox: p29, rest });
    expect(exactPrefix("openshell:bypass:sandbox-abc").match(MSG_TRUNCATED)).toBeNull();
  });
});

describe("LineSplitter", () => {
  const collect = (chunks: string[], maxLine = MAX_LINE, marker = "") => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), maxLine, marker);
    for (const c of chunks) s.push(c);
    s.end();
    return { lines, oversize: s.oversize, filtered: s.filtered };
  };
  const text = `4,1,2,-;first\n[ 1.0] second\r\n\nthird é€😀\nproxywall:abcd1234:IN= x\nlast`;
  const expected = ["4,1,2,-;first", "[ 1.0] second", "", "third é€😀", "proxywall:abcd1234:IN= x", "last"];

  test("the same lines wherever the chunks end", () => {
    expect(collect([text]).lines).toEqual(expected);
    for (let i = 0; i <= text.length; i++) {
      expect(collect([text.slice(0, i), text.slice(i)]).lines).toEqual(expected);
      for (let j = i; j <= text.length; j += 7) {
        expect(collect([text.slice(0, i), text.slice(i, j), text.slice(j)]).lines).toEqual(expected);
      }
    }
    expect(collect([...text]).lines).toEqual(expected);
  });

  test("CRLF and a CR before the end of input are stripped", () => {
    expect(collect(["a\r\nb\r\n"]).lines).toEqual(["a", "b"]);
    expect(collect(["a\r", "\nb\r"]).lines).toEqual(["a", "b"]);
    // only one CR, and only at the end
    expect(collect(["a\rb\r\r\n"]).lines).toEqual(["a\rb\r"]);
  });

  test("a marker filters lines before they are cut out, and still counts them", () => {
    for (let i = 0; i <= text.length; i++) {
      const r = collect([text.slice(0, i), text.slice(i)], MAX_LINE, "proxywall:");
      // a line cut by a chunk boundary may be handed on anyway; the parser checks each line again
      expect(r.lines.filter((l) => l.includes("proxywall:"))).toEqual(["proxywall:abcd1234:IN= x"]);
      expect(r.lines.length + r.filtered).toBe(expected.length);
    }
  });

  test("a line longer than the cap is dropped whole and counted; the next line is intact", () => {
    const big = "x".repeat(1024 * 1024);
    const input = `before\n${big}\nafter\n`;
    for (const step of [input.length, 65536, 4096, 1000, 16 * 1024 + 1]) {
      const chunks: string[] = [];
      for (let at = 0; at < input.length; at += step) chunks.push(input.slice(at, at + step));
      expect(collect(chunks)).toEqual({ lines: ["before", "after"], oversize: 1, filtered: 0 });
    }
    // exactly at the cap is kept, one over is not
    expect(collect(["a".repeat(100) + "\n" + "b".repeat(101) + "\nc"], 100)).toEqual({ lines: ["a".repeat(100), "c"], oversize: 1, filtered: 0 });
  });

  test("an endless line without newline is never accumulated", () => {
    const s = new LineSplitter(() => {
      throw new Error("no line expected");
    }, 1000);
    const chunk = "y".repeat(700);
    let maxCarry = 0;
    for (let i = 0; i < 20000; i++) {
      s.push(chunk);
      maxCarry = Math.max(maxCarry, (Reflect.get(s, "carry") as string).length);
    }
    expect(maxCarry).toBeLessThanOrEqual(1000);
    expect(s.oversize).toBe(1);
    s.end();
  });
});

describe("ByteLineSplitter", () => {
  interface Split {
    lines: string[];
    /** Lines handed on plus lines filtered: every line that was not too long. */
    total: number;
    oversize: number;
  }

  /** What `proxywall parse` did before: TextDecoder over the chunks, then LineSplitter. */
  const viaText = (bytes: Uint8Array, cuts: number[], maxLine: number, marker: string): Split => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), maxLine, marker);
    const d = new TextDecoder("utf-8", { fatal: false });
    let prev = 0;
    for (const c of [...cuts, bytes.length]) {
      s.push(d.decode(bytes.subarray(prev, c), { stream: true }));
      prev = c;
    }
    s.push(d.decode());
    s.end();
    return { lines, total: lines.length + s.filtered, oversize: s.oversize };
  };

  /** The same chunks as bytes, each in one buffer that is overwritten as soon as push returns. */
  const viaBytes = (bytes: Uint8Array, cuts: number[], maxLine: number, marker: string): Split => {
    const lines: string[] = [];
    const s = new ByteLineSplitter((l) => lines.push(l), maxLine, marker);
    const buf = new Uint8Array(bytes.length + 8);
    let prev = 0;
    for (const c of [...cuts, bytes.length]) {
      buf.set(bytes.subarray(prev, c), 5);
      s.push(buf.subarray(5, 5 + c - prev));
      buf.fill(0x41);
      prev = c;
    }
    s.end();
    return { lines, total: lines.length + s.filtered, oversize: s.oversize };
  };

  const enc = new TextEncoder();
  const TEXT = ["proxywall:", "proxy", "wall:", "\n", "\n", "\r", "\r\n", "a", "xyz ", "\u00e9", "\u20ac", "\ud83d\ude00", "\ufeff", "\ufffd"];
  // a byte-order mark, its beginnings, lone continuation and lead bytes, cut sequences, a surrogate
  const RAW = [[0xef, 0xbb, 0xbf], [0xef, 0xbb], [0xef], [0x80], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xff], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf]];

  test("the same lines and counts as TextDecoder and LineSplitter, for any bytes cut anywhere", () => {
    const rnd = mulberry32(0xb17e5);
    const int = (n: number) => Math.floor(rnd() * n);
    let oversize = 0;
    for (let t = 0; t < 4000; t++) {
      const parts: number[] = rnd() < 0.3 ? [0xef, 0xbb, 0xbf] : [];
      for (let i = int(60); i > 0; i--) {
        if (rnd() < 0.2) parts.push(...RAW[int(RAW.length)]!);
        else if (rnd() < 0.1) parts.push(...enc.encode((rnd() < 0.5 ? "x" : "\u20ac").repeat(int(120))));
        else parts.push(...enc.encode(TEXT[int(TEXT.length)]!));
      }
      const bytes = Uint8Array.from(parts);
      const cuts = Array.from({ length: int(6) }, () => int(bytes.length + 1)).sort((a, b) => a - b);
      const maxLine = [5, 10, 20, 100, 1000][int(5)]!;
      const marker = ["", "proxywall:", "\u00e9\u20ac", "\ufffd", "wall", "\ufeff"][int(6)]!;
      const want = viaText(bytes, cuts, maxLine, marker);
      const got = viaBytes(bytes, cuts, maxLine, marker);
      // Both may hand on lines without the marker (the parser checks each line); all lines with it.
      const has = (l: string) => l.includes(marker);
      const ctx = { bytes: [...bytes], cuts, maxLine, marker };
      expect({ ...ctx, lines: got.lines.filter(has), total: got.total, oversize: got.oversize }).toEqual({ ...ctx, lines: want.lines.filter(has), total: want.total, oversize: want.oversize });
      if (marker === "") expect(got.lines).toEqual(want.lines);
      oversize += want.oversize;
    }
    expect(oversize).toBeGreaterThan(1000); // the cap, in UTF-16 units, was tested too
  });

  test("every cut of a text with multi-byte characters, CRLF and a last line without newline", () => {
    const bytes = enc.encode(`\ufeff4,1,2,-;first\n[ 1.0] second\r\n\nthird \u00e9\u20ac\ud83d\ude00\nproxywall:abcd1234:IN= x\nlast`);
    const expected = ["4,1,2,-;first", "[ 1.0] second", "", "third \u00e9\u20ac\ud83d\ude00", "proxywall:abcd1234:IN= x", "last"];
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        expect(viaBytes(bytes, [i, j], MAX_LINE, "")).toEqual({ lines: expected, total: 6, oversize: 0 });
        const r = viaBytes(bytes, [i, j], MAX_LINE, "proxywall:");
        expect(r.lines.filter((l) => l.includes("proxywall:"))).toEqual(["proxywall:abcd1234:IN= x"]);
        expect(r.total).toBe(6);
      }
    }
  });

  test("an endless line is never accumulated beyond three bytes per character of the cap", () => {
    const s = new ByteLineSplitter(() => {
      throw new Error("no line expected");
    }, 1000);
    const chunk = new Uint8Array(700).fill(0x79);
    for (let i = 0; i < 20000; i++) {
      s.push(chunk);
      expect(Reflect.get(s, "carryLen") as number).toBeLessThanOrEqual(3000);
    }
    expect(s.oversize).toBe(1);
    s.end();
  });
});

describe("KernelLogParser over the fixtures", () => {
  const kmsg = fixture("kmsg-records.txt");
  const dmesg = fixture("dmesg-lines.txt");

  const expectedFields: ReturnType<typeof fieldsOf>[] = [
    { sandbox: "abcd1234", proto: "udp", family: "ipv4", src_addr: "10.210.0.2", src_port: 35637, dst_addr: "10.210.0.1", dst_port: 53, uid: 0, gid: 0, out_if: "vs-cap", log_time: "1180.427454" },
    { sandbox: "abcd1234", proto: "tcp", family: "ipv6", src_addr: "fd00:210::2", src_port: 42198, dst_addr: "fd00:210::1", dst_port: 443, uid: 0, gid: 0, out_if: "vs-cap", log_time: "1180.545331" },
    { sandbox: "abcd1234", proto: "tcp", family: "ipv6", src_addr: "fd00:210::2", src_port: 42198, dst_addr: "fd00:210::1", dst_port: 443, uid: 0, gid: 0, out_if: "vs-cap", log_time: "1181.561056" },
    { sandbox: "abcd1234", proto: "udp", family: "ipv6", src_addr: "fd00:210::2", src_port: 51315, dst_addr: "2001:4860:4860::8888", dst_port: 53, uid: 0, gid: 0, out_if: "vs-cap", log_time: "1182.680216" },
    { sandbox: "abcd1234", proto: "tcp", family: "ipv4", src_addr: "10.210.0.2", src_port: 51922, dst_addr: "198.51.100.7", dst_port: 443, uid: 65534, gid: 65534, out_if: "vs-cap", log_time: "1316.057048" },
  ];
  const expectedHints = [HINTS.dnsUdp, HINTS.tcp, HINTS.tcp, HINTS.dnsUdp, HINTS.tcp];

  for (const [name, text] of [
    ["kmsg-records.txt", kmsg],
    ["dmesg-lines.txt", dmesg],
  ] as const) {
    test(`${name}: every proxywall record, with exact fields and hints`, () => {
      const { events, stats } = parse(text);
      expect(events.map(fieldsOf)).toEqual(expectedFields);
      expect(events.map((e) => e.hint)).toEqual(expectedHints);
      for (const e of events) {
        expect(e).toMatchObject({ v: 1, event: "bypass_detect", action: "reject", source: "parse", process: null, dns_query: null });
        expect(e.reason).toBe("direct connection bypassed HTTP CONNECT proxy");
      }
      // the sixth line carries the truncated foreign prefix: not a proxywall record
      expect(stats).toEqual({ lines: 6, records: 5, events: 5, skipped_incomplete: 0, skipped_other_proto: 0, oversize_lines: 0 });
    });

    test(`${name}: the same events in any chunking`, () => {
      const whole = parse(text).events.map(fieldsOf);
      for (const chunk of [1, 2, 3, 7, 64, 200, 333]) expect(parse(text, { chunk }).events.map(fieldsOf)).toEqual(whole);
    });

    test(`${name}: pushBytes gives the same events and counts as push, in any chunking`, () => {
      const { events, stats } = parse(text);
      const bytes = new TextEncoder().encode(text);
      for (const chunk of [1, 2, 3, 7, 64, 200, 333, bytes.length]) {
        const got: BypassDetect[] = [];
        const p = new KernelLogParser({ matcher: anySandboxPrefix(), source: "parse", onEvent: (e) => got.push(e) });
        const buf = new Uint8Array(chunk);
        for (let at = 0; at < bytes.length; at += chunk) {
          const piece = bytes.subarray(at, at + chunk);
          buf.set(piece);
          p.pushBytes(buf.subarray(0, piece.length));
          buf.fill(0);
        }
        p.end();
        expect(got.map(fieldsOf)).toEqual(events.map(fieldsOf));
        expect(p.stats()).toEqual(stats);
      }
    });

    test(`${name}: --prefix with the 34-character prefix finds the truncated record only`, () => {
      const { events, stats } = parse(text, { matcher: exactPrefix(LONG_PREFIX) });
      expect(events.map(fieldsOf)).toEqual([
        {
          sandbox: "openshell:bypass:sandbox-abcd1234",
          proto: "tcp",
          family: "ipv4",
          src_addr: "10.210.0.2",
          src_port: 51922,
          dst_addr: "198.51.100.7",
          dst_port: 443,
          uid: 65534,
          gid: 65534,
          out_if: "vs-cap",
          log_time: "1316.057059",
        },
      ]);
      expect(stats).toMatchObject({ lines: 6, records: 1, events: 1 });
    });

    test(`${name}: --prefix of this sandbox, and of another one`, () => {
      expect(parse(text, { matcher: exactPrefix("proxywall:abcd1234:") }).events.map(fieldsOf)).toEqual(expectedFields);
      expect(parse(text, { matcher: exactPrefix("proxywall:deadbeef:") })).toEqual({
        events: [],
        stats: { lines: 6, records: 0, events: 0, skipped_incomplete: 0, skipped_other_proto: 0, oversize_lines: 0 },
      });
    });
  }

  test("kmsg and dmesg fixtures give the same events", () => {
    expect(parse(kmsg).events.map(fieldsOf)).toEqual(parse(dmesg).events.map(fieldsOf));
  });

  test("all four envelopes in one stream, with continuation lines between", () => {
    const mixed = [
      `4,12377,1180427454,-;${MSG_UDP_V4}`,
      " SUBSYSTEM=net",
      " DEVICE=+net:vs-cap",
      `[ 1180.545331] ${MSG_TCP_V6}`,
      MSG_TCP_V4,
      `Nov 29 13:36:53 host kernel: ${MSG_TCP_V4}`,
      `Nov 29 13:36:54 host kernel: [ 1316.057048] ${MSG_TCP_V4}`,
      `<4>[ 1316.057048] ${MSG_TCP_V4}`,
      `[Sun Nov 29 13:36:53 2026] ${MSG_UDP_V4}`,
      "",
    ].join("\n");
    const { events, stats } = parse(mixed);
    expect(events.map((e) => [e.proto, e.family, e.dst_addr, e.dst_port, e.log_time])).toEqual([
      ["udp", "ipv4", "10.210.0.1", 53, "1180.427454"],
      ["tcp", "ipv6", "fd00:210::1", 443, "1180.545331"],
      ["tcp", "ipv4", "198.51.100.7", 443, null],
      ["tcp", "ipv4", "198.51.100.7", 443, "Nov 29 13:36:53"],
      ["tcp", "ipv4", "198.51.100.7", 443, "Nov 29 13:36:54"],
      ["tcp", "ipv4", "198.51.100.7", 443, "1316.057048"],
      ["udp", "ipv4", "10.210.0.1", 53, "Sun Nov 29 13:36:53 2026"],
    ]);
    expect(stats).toEqual({ lines: 9, records: 7, events: 7, skipped_incomplete: 0, skipped_other_proto: 0, oversize_lines: 0 });
  });
});

describe("KernelLogParser: what is not an event", () => {
  test("unrelated kernel lines, other LOG prefixes, near misses", () => {
    const text = [
      "[    0.000000] Linux version 6.18.0 (gcc 12.2.0)",
      "6,1001,2000000,-;usb 1-1: new high-speed USB device number 2 using xhci_hcd",
      " SUBSYSTEM=usb",
      "Nov 29 13:36:53 host kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=203.0.113.9 DST=10.0.0.5 PROTO=TCP SPT=1 DPT=22",
      "[ 12.5] audit: type=1400 audit(1700000000.1:2): apparmor=\"DENIED\" operation=\"open\"",
      "proxywall: starting sandbox abcd1234",
      "[ 1.0] a line that mentions proxywall:abcd1234:IN= in the middle DST=1.2.3.4 DPT=1 PROTO=TCP",
      "Nov 29 13:36:53 host sshd[1]: proxywall:abcd1234:IN= OUT=x SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP DPT=1",
      ` ${MSG_TCP_V4}`,
      `\t${MSG_TCP_V4}`,
      MSG_TRUNCATED,
    ].join("\n");
    const { events, stats } = parse(text);
    expect(events).toEqual([]);
    expect(stats).toEqual({ lines: 11, records: 0, events: 0, skipped_incomplete: 0, skipped_other_proto: 0, oversize_lines: 0 });
  });

  test("records without DST or DPT are skipped and counted; other protocols too", () => {
    const text = [
      "[ 1.0] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 LEN=60 PROTO=TCP SPT=1 DPT=443 UID=0 GID=0",
      "[ 1.1] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 PROTO=TCP SPT=1 UID=0 GID=0",
      // a fragment: no ports
      "[ 1.2] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=1 MF FRAG:0 PROTO=UDP",
      "[ 1.3] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 UID=0 GID=0",
      "[ 1.4] proxywall:abcd1234:IN= OUT=vs-cap SRC=fd00:0210:0000:0000:0000:0000:0000:0002 DST=2001:4860:4860:0000:0000:0000:0000:8888 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1",
      `[ 1.5] ${MSG_TCP_V4}`,
    ].join("\n");
    const { events, stats } = parse(text);
    expect(events.map((e) => e.log_time)).toEqual(["1.5"]);
    expect(stats).toEqual({ lines: 6, records: 6, events: 1, skipped_incomplete: 3, skipped_other_proto: 2, oversize_lines: 0 });
  });

  test("garbage: random bytes, NUL bytes, invalid UTF-8, 1 MB lines: no throw, no false event", () => {
    let seed = 99;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    const random = Uint8Array.from({ length: 2 * 1024 * 1024 }, rnd);
    const pieces: Uint8Array[] = [
      random,
      new TextEncoder().encode("\n\0\0\0proxywall:abcd1234:IN=\0 DST=\0 DPT=\0\n"),
      // invalid UTF-8: lone continuation bytes, overlong forms, truncated sequences, surrogates
      Uint8Array.from([0x80, 0xbf, 0xc0, 0xaf, 0xe0, 0x80, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xff, 0xfe, 0x0a]),
      new TextEncoder().encode(`proxywall:abcd1234:IN= OUT=\xff SRC=10.0.0.1 DST=10.0.0.\u0000 PROTO=TCP DPT=1\n`),
      new TextEncoder().encode("proxywall:" + "A".repeat(1024 * 1024) + "\n"),
      new TextEncoder().encode("proxywall:abcd1234:IN= " + "DST=1.2.3.4 ".repeat(100000) + "\n"),
      Uint8Array.from([0x70, 0x72, 0x6f, 0x78, 0x79, 0xc3]), // "proxy" and half a character, at the very end
    ];
    let bytes = 0;
    for (const p of pieces) bytes += p.length;
    const all = new Uint8Array(bytes);
    let at = 0;
    for (const p of pieces) {
      all.set(p, at);
      at += p.length;
    }
    for (const step of [all.length, 65536, 4093]) {
      const events: BypassDetect[] = [];
      const p = new KernelLogParser({ matcher: anySandboxPrefix(), source: "parse", onEvent: (e) => events.push(e) });
      const decoder = new TextDecoder("utf-8", { fatal: false });
      for (let i = 0; i < all.length; i += step) p.push(decoder.decode(all.subarray(i, i + step), { stream: true }));
      p.push(decoder.decode());
      p.end();
      expect(events).toEqual([]);
      expect(p.stats().oversize_lines).toBeGreaterThanOrEqual(2);
    }
  });

  test("garbage around a real record does not hide it", () => {
    const text = `\0\0\0garbage \uFFFD\uFFFD\n${"z".repeat(1024 * 1024)}\n[ 1316.057048] ${MSG_TCP_V4}\n\u0000\n`;
    for (const chunk of [text.length, 65536, 1000]) {
      const { events, stats } = parse(text, { chunk });
      expect(events.map(fieldsOf)).toEqual([
        { sandbox: "abcd1234", proto: "tcp", family: "ipv4", src_addr: "10.210.0.2", src_port: 51922, dst_addr: "198.51.100.7", dst_port: 443, uid: 65534, gid: 65534, out_if: "vs-cap", log_time: "1316.057048" },
      ]);
      expect(stats).toMatchObject({ lines: 3, events: 1, oversize_lines: 1 });
    }
  });
});

describe("hints", () => {
  const rec = (proto: "TCP" | "UDP", dst: string, dpt: number) =>
    `[ 1.0] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=${dst} LEN=60 PROTO=${proto} SPT=40000 DPT=${dpt} UID=0 GID=0`;
  const proxy = { addrs: ["10.210.0.1"], port: 3128 };
  const hintOf = (line: string) => parse(line, { proxy }).events[0]!.hint;

  test("each case gets its hint", () => {
    expect(hintOf(rec("UDP", "10.210.0.1", 53))).toBe(HINTS.dnsUdp);
    expect(hintOf(rec("TCP", "8.8.8.8", 53))).toBe(HINTS.dnsTcp);
    expect(hintOf(rec("UDP", "198.51.100.7", 443))).toBe(HINTS.udp);
    expect(hintOf(rec("UDP", "10.210.0.1", 123))).toBe(HINTS.udp);
    expect(hintOf(rec("TCP", "10.210.0.1", 8080))).toBe(HINTS.wrongProxyPort);
    expect(hintOf(rec("TCP", "198.51.100.7", 443))).toBe(HINTS.tcp);
    // the proxy's own port on its host is not a wrong port
    expect(hintOf(rec("TCP", "10.210.0.1", 3128))).toBe(HINTS.tcp);
  });

  test("wrong proxy port over IPv6 compares canonical addresses", () => {
    const v6 = "[ 1.0] proxywall:abcd1234:IN= OUT=vs-cap SRC=fd00:0210:0000:0000:0000:0000:0000:0002 DST=fd00:0210:0000:0000:0000:0000:0000:0001 LEN=80 PROTO=TCP SPT=1 DPT=80";
    expect(parse(v6, { proxy: { addrs: ["fd00:210::1"], port: 3128 } }).events[0]!.hint).toBe(HINTS.wrongProxyPort);
    expect(parse(v6).events[0]!.hint).toBe(HINTS.tcp);
  });

  test("bypassHint directly", () => {
    expect(bypassHint({ proto: "udp", dstAddr: "1.1.1.1", dstPort: 53 })).toBe(HINTS.dnsUdp);
    expect(bypassHint({ proto: "tcp", dstAddr: "1.1.1.1", dstPort: 53, proxy })).toBe(HINTS.dnsTcp);
    expect(bypassHint({ proto: "tcp", dstAddr: "10.210.0.1", dstPort: 53, proxy })).toBe(HINTS.dnsTcp);
  });
});

describe("bypassEventLine (the bytes parse writes)", () => {
  const fields: PacketFields = { proto: "tcp", family: "ipv4", srcAddr: "10.210.0.2", srcPort: 51922, dstAddr: "198.51.100.7", dstPort: 443, uid: 65534, gid: 65534, outIf: "vs-cap" };
  const encode = (e: BypassDetect) => {
    const max = bypassEventLine.maxBytes(e);
    const buf = new Uint8Array(max + 16).fill(0xaa);
    const end = bypassEventLine.encode(e, buf, 8);
    expect(end - 8).toBeLessThanOrEqual(max);
    expect(buf[end]).toBe(0xaa); // nothing written past the end it reports
    return new TextDecoder().decode(buf.subarray(8, end));
  };

  test("is exactly JSON.stringify of the event", () => {
    for (const e of [...parse(fixture("kmsg-records.txt")).events, ...parse(fixture("dmesg-lines.txt"), { matcher: exactPrefix(LONG_PREFIX) }).events]) {
      expect(encode(e)).toBe(JSON.stringify(e));
    }
  });

  test("strings that need escaping, non-ASCII, nulls, big numbers", () => {
    const odd = ['quote " and back\\slash', "ctl \u0001\n\t", "é € 😀", "lone \ud800 surrogate", "\u007f\u2028", ""];
    for (const s of odd) {
      const e = bypassEvent({ sandbox: s || "x", source: "parse" }, { ...fields, srcAddr: s, outIf: s }, s);
      expect(encode(e)).toBe(JSON.stringify(e));
      expect(encode({ ...e, hint: s, dns_query: s })).toBe(JSON.stringify({ ...e, hint: s, dns_query: s }));
    }
    const nulls = bypassEvent({ sandbox: "abcd1234", source: "kmsg" }, { ...fields, srcAddr: null, srcPort: null, uid: null, gid: null, outIf: null }, null);
    expect(encode(nulls)).toBe(JSON.stringify(nulls));
    const big = { ...nulls, uid: 4294967295, gid: 0, src_port: 0, dst_port: 65535 };
    expect(encode(big)).toBe(JSON.stringify(big));
    const attributed = { ...nulls, process: { resolved: false as const, why: "socket gone \"already\"" } };
    expect(encode(attributed)).toBe(JSON.stringify(attributed));
    // every value is written as it is, none assumed from the schema of the day
    const other = { ...nulls, action: "observe", reason: "other reason", source: "nflog" } as unknown as BypassDetect;
    expect(encode(other)).toBe(JSON.stringify(other));
  });
});
