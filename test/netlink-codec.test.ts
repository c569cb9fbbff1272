// The netlink wire format (src/monitor/netlink-codec.ts): requests built, chunks split, attributes
// and errors read back, and packet messages turned into deliveries, all without a socket.
import { describe, expect, test } from "bun:test";
import {
  ackOf,
  be16,
  be32,
  checkInt,
  messageSplitter,
  NetlinkError,
  NfnlMessage,
  nfnlAttributes,
  NFNL_SUBSYS_ULOG,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
  nlmsgErrno,
  packetDecoder,
  splitMessages,
  type ListenerStats,
  type RawMessage,
} from "../src/monitor/netlink-codec.ts";
import { mulberry32 } from "./support/prng.ts";

/** A bare netlink message: nlmsghdr (host order) and `body`. */
function nlmsg(type: number, seq: number, body: number[] = [], flags = 0): Uint8Array {
  const len = 16 + body.length;
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  b.set(body, 16);
  return b;
}

/** NLMSG_ERROR for request `seq` with `errno` (0: an ACK), as NETLINK_CAP_ACK sends it (header of the request only). */
function nlError(seq: number, errno: number): Uint8Array {
  const body = new Uint8Array(4 + 16);
  new DataView(body.buffer).setInt32(0, -errno, true);
  return nlmsg(NLMSG_ERROR, seq, [...body]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + ((p.length + 3) & ~3), 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += (p.length + 3) & ~3;
  }
  return out;
}

const ULOG_PACKET = (NFNL_SUBSYS_ULOG << 8) | 0;

describe("NfnlMessage", () => {
  test("nlmsghdr, nfgenmsg (res_id big-endian) and 4-byte aligned attributes", () => {
    const msg = new NfnlMessage(NFNL_SUBSYS_ULOG, 1, NLM_F_REQUEST | NLM_F_ACK, 7, 0x1234).addU8(1, 1).addBe16(3, 0xabcd).addBe32(5, 0x01020304).bytes();
    expect([...msg]).toEqual([
      44, 0, 0, 0, 0x01, 0x04, 0x05, 0x00, 7, 0, 0, 0, 0, 0, 0, 0, // len 44, type ULOG<<8|1, flags, seq, pid
      0, 0, 0x12, 0x34, // AF_UNSPEC, NFNETLINK_V0, res_id
      5, 0, 1, 0, 1, 0, 0, 0, // u8 attribute, padded
      6, 0, 3, 0, 0xab, 0xcd, 0, 0, // be16
      8, 0, 5, 0, 1, 2, 3, 4, // be32
    ]);
  });

  test("grows past its first buffer and reads back whole", () => {
    const big = new Uint8Array(1000).map((_, i) => i & 255);
    const msg = new NfnlMessage(3, 2, NLM_F_REQUEST, 1, 0).add(9, big).addBe32(10, 42).bytes();
    const { messages, bad } = splitMessages(msg);
    expect(bad).toBe(0);
    expect(messages).toHaveLength(1);
    const attrs = nfnlAttributes(messages[0]!.body, 10)!;
    expect(attrs[9]).toEqual(big);
    expect(be32(attrs[10])).toBe(42);
  });
});

describe("splitMessages", () => {
  test("several messages in one chunk, in order, each with its own body", () => {
    const chunk = concat(nlmsg(0x400, 1, [1, 2, 3]), nlmsg(NLMSG_DONE, 2), nlmsg(0x300, 3, [9, 9, 9, 9, 9]));
    const { messages, bad } = splitMessages(chunk);
    expect(bad).toBe(0);
    expect(messages.map((m) => [m.type, m.seq, [...m.body]])).toEqual([
      [0x400, 1, [1, 2, 3]],
      [NLMSG_DONE, 2, []],
      [0x300, 3, [9, 9, 9, 9, 9]],
    ]);
  });

  test("a header that claims more than the chunk holds ends the walk and counts once", () => {
    const good = nlmsg(0x400, 1, [1, 2, 3, 4]);
    const cut = nlmsg(0x400, 2, new Array(40).fill(0)).subarray(0, 30);
    const { messages, bad } = splitMessages(concat(good, cut));
    expect(messages).toHaveLength(1);
    expect(bad).toBe(1);
    const tiny = new Uint8Array(16); // nlmsg_len 0
    expect(splitMessages(tiny)).toEqual({ messages: [], bad: 1 });
    expect(splitMessages(new Uint8Array(10))).toEqual({ messages: [], bad: 0 });
  });

  test("random chunks never throw and never read past their end", () => {
    const next = mulberry32(7);
    for (let i = 0; i < 5000; i++) {
      const b = new Uint8Array(Math.floor(next() * 120)).map(() => (next() < 0.5 ? Math.floor(next() * 40) : Math.floor(next() * 256)));
      const { messages } = splitMessages(b);
      for (const m of messages) {
        expect(m.body.byteOffset + m.body.length).toBeLessThanOrEqual(b.length);
        nfnlAttributes(m.body, 20);
      }
    }
  });
});

describe("errors and acknowledgements", () => {
  test("nlmsgErrno: 0 for an ACK, the positive errno for a refusal, null when too short", () => {
    expect(nlmsgErrno(splitMessages(nlError(1, 0)).messages[0]!.body)).toBe(0);
    expect(nlmsgErrno(splitMessages(nlError(1, 1)).messages[0]!.body)).toBe(1);
    expect(nlmsgErrno(new Uint8Array(3))).toBeNull();
  });

  test("ackOf finds the answer to its own request among packets and other answers", () => {
    const chunk = concat(nlmsg(0x400, 0, [0, 0, 0, 0]), nlError(1, 0), nlError(2, 95));
    expect(ackOf(chunk, 1)).toBe(0);
    expect(ackOf(chunk, 2)).toBe(95);
    expect(ackOf(chunk, 3)).toBeNull();
  });

  test("NetlinkError carries the errno", () => {
    const e = new NetlinkError("binding: EPERM", 1);
    expect(e).toBeInstanceOf(Error);
    expect([e.name, e.errno, e.message]).toEqual(["NetlinkError", 1, "binding: EPERM"]);
  });
});

describe("attributes and numbers", () => {
  test("type masked (NLA_F_NESTED, NLA_F_NET_BYTEORDER), first occurrence wins, beyond maxType ignored", () => {
    const msg = new NfnlMessage(4, 0, 0, 0, 0).add(0x8000 | 2, Uint8Array.of(1)).add(2, Uint8Array.of(2)).add(0x4000 | 3, Uint8Array.of(3)).add(30, Uint8Array.of(30)).bytes();
    const attrs = nfnlAttributes(splitMessages(msg).messages[0]!.body, 10)!;
    expect([...attrs[2]!]).toEqual([1]);
    expect([...attrs[3]!]).toEqual([3]);
    expect(attrs.length).toBe(11);
  });

  test("a malformed attribute header: null; a body without nfgenmsg: null", () => {
    const body = Uint8Array.of(0, 0, 0, 0, 200, 0, 1, 0, 9);
    expect(nfnlAttributes(body, 5)).toBeNull();
    expect(nfnlAttributes(Uint8Array.of(0, 0), 5)).toBeNull();
    expect(nfnlAttributes(Uint8Array.of(0, 0, 0, 0), 5)).toEqual(new Array(6));
  });

  test("be16/be32 read big-endian, null when short or absent", () => {
    expect(be32(Uint8Array.of(0xff, 0xff, 0xff, 0xfe))).toBe(0xfffffffe);
    expect(be16(Uint8Array.of(0, 0, 0x86, 0xdd), 2)).toBe(0x86dd);
    expect(be32(Uint8Array.of(1, 2, 3))).toBeNull();
    expect(be16(undefined)).toBeNull();
  });

  test("checkInt", () => {
    expect(() => checkInt("group", 65535, 0, 0xffff)).not.toThrow();
    expect(() => checkInt("group", 65536, 0, 0xffff)).toThrow("group must be an integer in 0..65535, got 65536");
    expect(() => checkInt("copyRange", 1.5, 1, 10)).toThrow(RangeError);
  });
});

describe("packetDecoder and messageSplitter", () => {
  const FORMAT = { type: ULOG_PACKET, maxAttr: 14, headerAttr: 1, headerLen: 3 };
  const packet = (hdr: number[]) => new NfnlMessage(NFNL_SUBSYS_ULOG, 0, 0, 0, 5).add(1, Uint8Array.from(hdr)).add(9, Uint8Array.of(0x45, 0)).bytes();

  function harness() {
    const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
    const got: [number[], number[]][] = [];
    const errors: Error[] = [];
    const onChunk = messageSplitter(
      packetDecoder(FORMAT, (attrs, hdr) => got.push([[...hdr], [...attrs[9]!]]), stats),
      stats,
      (e) => errors.push(e),
    );
    return { stats, got, errors, onChunk };
  }

  test("packets are delivered with their header; ACKs and DONE pass silently", () => {
    const h = harness();
    h.onChunk(concat(nlError(1, 0), packet([0x08, 0x00, 3]), nlmsg(NLMSG_DONE, 0), packet([0x86, 0xdd, 3])));
    expect(h.got).toEqual([
      [[0x08, 0x00, 3], [0x45, 0]],
      [[0x86, 0xdd, 3], [0x45, 0]],
    ]);
    expect(h.stats).toEqual({ packets: 2, enobufs: 0, decodeErrors: 0 });
    expect(h.errors).toEqual([]);
  });

  test("a refused request is an error; OVERRUN counts as ENOBUFS; other messages and short headers are decode errors", () => {
    const h = harness();
    h.onChunk(concat(nlError(9, 2), nlmsg(NLMSG_OVERRUN, 0), nlmsg(0x300, 0, [0, 0, 0, 0]), packet([0x08, 0x00])));
    expect(h.errors.map((e) => [(e as NetlinkError).errno, e.message])).toEqual([[2, "netlink request refused: ENOENT"]]);
    expect(h.stats).toEqual({ packets: 0, enobufs: 1, decodeErrors: 2 });
  });

  test("a throwing handler is reported, and the next message is still delivered", () => {
    const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
    const seen: number[] = [];
    const errors: string[] = [];
    const onChunk = messageSplitter(
      (m: RawMessage) => {
        seen.push(m.seq);
        if (m.seq === 1) throw new Error("handler failed");
      },
      stats,
      (e) => errors.push(e.message),
    );
    onChunk(concat(nlmsg(0x400, 1), nlmsg(0x400, 2)));
    expect(seen).toEqual([1, 2]);
    expect(errors).toEqual(["handler failed"]);
  });
});
