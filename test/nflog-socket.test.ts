// NFLOG's messages (src/monitor/nflog-socket.ts) without a socket: the requests that bind and
// configure a group, and a packet message read back. The sockets themselves: netlink.test.ts.
import { describe, expect, test } from "bun:test";
import { be32, nfnlAttributes, NLM_F_ACK, NLM_F_REQUEST, packetDecoder, splitMessages, NfnlMessage, NFNL_SUBSYS_ULOG } from "../src/monitor/netlink-codec.ts";
import { NFLOG_FORMAT, nflogBindRequest, nflogConfigRequest, nflogPacket, type NflogPacket } from "../src/monitor/nflog-socket.ts";

function only(msg: Uint8Array) {
  const { messages, bad } = splitMessages(msg);
  expect(bad).toBe(0);
  expect(messages).toHaveLength(1);
  return messages[0]!;
}

describe("NFLOG requests", () => {
  test("bind: NFULNL_MSG_CONFIG for the group, NFULA_CFG_CMD BIND, acknowledged, seq 1", () => {
    const m = only(nflogBindRequest(5));
    expect([m.type, m.flags, m.seq]).toEqual([(NFNL_SUBSYS_ULOG << 8) | 1, NLM_F_REQUEST | NLM_F_ACK, 1]);
    expect([...m.body.subarray(0, 4)]).toEqual([0, 0, 0, 5]); // AF_UNSPEC, version 0, res_id 5
    expect([...nfnlAttributes(m.body, 5)![1]!]).toEqual([1]);
  });

  test("config: copy mode packet with the copy range, queue threshold 1, seq 2", () => {
    const m = only(nflogConfigRequest(65535, 512));
    expect(m.seq).toBe(2);
    expect([...m.body.subarray(2, 4)]).toEqual([0xff, 0xff]);
    const attrs = nfnlAttributes(m.body, 5)!;
    expect([...attrs[2]!]).toEqual([0, 0, 2, 0, 2, 0]); // be32 512, NFULNL_COPY_PACKET, pad
    expect(be32(attrs[5])).toBe(1);
  });
});

describe("NFLOG packets", () => {
  /** A packet message as the kernel sends one: header, prefix (NUL-terminated), uid, gid, payload. */
  function packetMessage(prefix: string, uid: number | null): Uint8Array {
    const msg = new NfnlMessage(NFNL_SUBSYS_ULOG, 0, 0, 0, 5)
      .add(1, Uint8Array.of(0x08, 0x00, 3)) // hw_protocol IPv4, hook LOCAL_OUT
      .add(10, new TextEncoder().encode(`${prefix}\0`));
    if (uid !== null) msg.addBe32(11, uid).addBe32(14, uid);
    return msg.add(9, Uint8Array.of(0x45, 0, 0, 20)).bytes();
  }

  function decode(chunk: Uint8Array): NflogPacket[] {
    const got: NflogPacket[] = [];
    const stats = { packets: 0, decodeErrors: 0 };
    for (const m of splitMessages(chunk).messages) packetDecoder(NFLOG_FORMAT, (attrs, hdr) => got.push(nflogPacket(attrs, hdr)), stats)(m);
    return got;
  }

  test("prefix, uid, gid, payload, protocol and hook", () => {
    expect(decode(packetMessage("proxywall:abcd1234:", 65534))).toEqual([
      { prefix: "proxywall:abcd1234:", uid: 65534, gid: 65534, payload: Uint8Array.of(0x45, 0, 0, 20), outIfindex: null, hwProtocol: 0x0800, hook: 3 },
    ]);
  });

  test("a packet without a socket has no uid or gid", () => {
    expect(decode(packetMessage("p:", null))[0]).toMatchObject({ prefix: "p:", uid: null, gid: null });
  });

  test("the payload is a copy: the read buffer can be reused", () => {
    const chunk = packetMessage("p:", 0);
    const [p] = decode(chunk);
    chunk.fill(0);
    expect([...p!.payload]).toEqual([0x45, 0, 0, 20]);
  });
});
