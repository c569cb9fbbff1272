// NFQUEUE's messages (src/monitor/nfqueue-socket.ts) without a socket: binding, configuration and
// verdicts. The sockets themselves: netlink.test.ts.
import { describe, expect, test } from "bun:test";
import { be32, nfnlAttributes, NLM_F_ACK, NLM_F_REQUEST, splitMessages, NFNL_SUBSYS_QUEUE } from "../src/monitor/netlink-codec.ts";
import { nfqueueBindRequest, nfqueueConfigRequest, nfqueueVerdictRequest, type Verdict } from "../src/monitor/nfqueue-socket.ts";

function only(msg: Uint8Array | null) {
  const { messages, bad } = splitMessages(msg!);
  expect(bad).toBe(0);
  expect(messages).toHaveLength(1);
  return { ...messages[0]!, attrs: nfnlAttributes(messages[0]!.body, 10)! };
}

describe("NFQUEUE requests", () => {
  test("bind: NFQNL_MSG_CONFIG for the queue, NFQA_CFG_CMD BIND (no PF), acknowledged, seq 1", () => {
    const m = only(nfqueueBindRequest(7));
    expect([m.type, m.flags, m.seq]).toEqual([(NFNL_SUBSYS_QUEUE << 8) | 2, NLM_F_REQUEST | NLM_F_ACK, 1]);
    expect([...m.body.subarray(2, 4)]).toEqual([0, 7]);
    expect([...m.attrs[1]!]).toEqual([1, 0, 0, 0]);
  });

  test("config: copy mode packet, max length, fail-open off, uid/gid asked for (or not)", () => {
    const m = only(nfqueueConfigRequest(7, 2, 512, 1024, true));
    expect(m.seq).toBe(2);
    expect([...m.attrs[2]!]).toEqual([0, 0, 2, 0, 2]);
    expect(be32(m.attrs[3])).toBe(1024);
    expect(be32(m.attrs[4])).toBe(0b1001); // mask: FAIL_OPEN | UID_GID
    expect(be32(m.attrs[5])).toBe(0b1000); // flags: UID_GID only
    const old = only(nfqueueConfigRequest(7, 3, 512, 1024, false));
    expect([old.seq, be32(old.attrs[4]), be32(old.attrs[5])]).toEqual([3, 0b0001, 0]);
  });
});

describe("NFQUEUE verdicts", () => {
  const verdictOf = (v: Verdict) => {
    const m = only(nfqueueVerdictRequest(7, 101, 0xdeadbeef, v));
    return { type: m.type, flags: m.flags, verdict: be32(m.attrs[2]), id: be32(m.attrs[2]!.subarray(4)), mark: be32(m.attrs[3]) };
  };

  test("accept and drop: the verdict header only, no ACK asked for", () => {
    expect(verdictOf("accept")).toEqual({ type: (NFNL_SUBSYS_QUEUE << 8) | 1, flags: NLM_F_REQUEST, verdict: 1, id: 0xdeadbeef, mark: null });
    expect(verdictOf("drop")).toMatchObject({ verdict: 0, id: 0xdeadbeef, mark: null });
  });

  test("repeatWithMark: NF_REPEAT and the mark", () => {
    expect(verdictOf({ repeatWithMark: 0x70770001 })).toMatchObject({ verdict: 4, mark: 0x70770001 });
    expect(verdictOf({ repeatWithMark: 0xffffffff })).toMatchObject({ verdict: 4, mark: 0xffffffff });
  });

  test("anything else is no verdict", () => {
    for (const bad of [{ repeatWithMark: -1 }, { repeatWithMark: 2 ** 32 }, { repeatWithMark: 1.5 }, "repeat", null]) {
      expect(nfqueueVerdictRequest(7, 1, 1, bad as Verdict)).toBeNull();
    }
  });
});
