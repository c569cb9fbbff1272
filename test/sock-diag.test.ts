// sock_diag lookups (src/monitor/sock-diag.ts): the request and the reply as bytes, then real
// lookups of this process's own loopback sockets (setns into its own namespace needs root).
import { afterAll, describe, expect, test } from "bun:test";
import { readlinkSync, readdirSync } from "node:fs";
import { NLMSG_ERROR } from "../src/monitor/netlink-codec.ts";
import { SockDiag, sockDiagReply, sockDiagRequest, type DiagSocket } from "../src/monitor/sock-diag.ts";
import type { FullTuple } from "../src/net/five-tuple.ts";
import { libc } from "../src/sys/libc.ts";

const TCP4: FullTuple = { proto: "tcp", family: "ipv4", srcAddr: "10.200.0.2", srcPort: 47578, dstAddr: "198.51.100.7", dstPort: 80 };

describe("sockDiagRequest", () => {
  test("TCP: inet_diag_req_v2 for the exact four-tuple, every state, no cookie", () => {
    const r = sockDiagRequest(9, TCP4);
    const v = new DataView(r.buffer);
    expect([r.length, v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true), v.getUint32(8, true)]).toEqual([72, 72, 20, 1, 9]);
    expect([r[16], r[17]]).toEqual([2, 6]); // AF_INET, IPPROTO_TCP
    expect(v.getUint32(20, true)).toBe(0xffffffff);
    expect([v.getUint16(24, false), v.getUint16(26, false)]).toEqual([47578, 80]);
    expect([...r.subarray(28, 32)]).toEqual([10, 200, 0, 2]);
    expect([...r.subarray(44, 48)]).toEqual([198, 51, 100, 7]);
    expect([v.getUint32(64, true), v.getUint32(68, true)]).toEqual([0xffffffff, 0xffffffff]);
  });

  test("UDP, IPv6: the ends swapped, as udp_diag looks sockets up", () => {
    const t: FullTuple = { proto: "udp", family: "ipv6", srcAddr: "fd70:7077:ac8:4::2", srcPort: 5353, dstAddr: "2001:db8::7", dstPort: 53 };
    const r = sockDiagRequest(1, t);
    const v = new DataView(r.buffer);
    expect([r[16], r[17]]).toEqual([10, 17]);
    expect([v.getUint16(24, false), v.getUint16(26, false)]).toEqual([53, 5353]);
    expect([...r.subarray(28, 32)]).toEqual([0x20, 0x01, 0x0d, 0xb8]);
    expect([...r.subarray(44, 48)]).toEqual([0xfd, 0x70, 0x70, 0x77]);
    expect(r[59]).toBe(2);
  });

  test("the out interface goes into idiag_if (a link-local socket is found only with it); UDP-Lite is protocol 136", () => {
    const ll: FullTuple = { proto: "tcp", family: "ipv6", srcAddr: "fe80::1", srcPort: 40000, dstAddr: "fe80::2", dstPort: 443, outIfindex: 3 };
    expect(new DataView(sockDiagRequest(1, ll).buffer).getUint32(60, true)).toBe(3);
    expect(new DataView(sockDiagRequest(1, TCP4).buffer).getUint32(60, true)).toBe(0);
    expect(sockDiagRequest(1, { ...TCP4, proto: "udplite" })[17]).toBe(136);
  });

  test("a reused buffer holds nothing of the request before", () => {
    const buf = sockDiagRequest(1, { ...TCP4, family: "ipv6", srcAddr: "fd70::ffff:ffff", dstAddr: "2001:db8::ffff:ffff" });
    expect(sockDiagRequest(2, TCP4, buf)).toEqual(sockDiagRequest(2, TCP4));
  });
});

describe("sockDiagReply", () => {
  function reply(type: number, seq: number, bodyLen: number): Uint8Array {
    const b = new Uint8Array(16 + bodyLen);
    const v = new DataView(b.buffer);
    v.setUint32(0, b.length, true);
    v.setUint16(4, type, true);
    v.setUint32(8, seq, true);
    if (bodyLen >= 72) {
      b[17] = 2; // SYN_SENT
      v.setUint32(16 + 64, 65534, true);
      v.setUint32(16 + 68, 91234, true);
    }
    return b;
  }

  test("the socket of an answer to our request; null for a refusal or a short answer; 'other' for another request's", () => {
    expect(sockDiagReply(reply(20, 5, 72), 5)).toEqual({ state: 2, uid: 65534, inode: 91234 });
    expect(sockDiagReply(reply(NLMSG_ERROR, 5, 20), 5)).toBeNull();
    expect(sockDiagReply(reply(20, 5, 40), 5)).toBeNull();
    expect(sockDiagReply(reply(20, 4, 72), 5)).toBe("other");
    expect(sockDiagReply(new Uint8Array(8), 5)).toBe("other");
  });
});

function inodeOf(fd: number): number {
  return Number(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))![1]);
}

describe.skipIf(process.getuid?.() !== 0)("SockDiag in this process's own namespace", () => {
  const diag = new SockDiag("/proc/self/ns/net");
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  afterAll(() => {
    diag.close();
    server.stop(true);
  });

  test("finds the client end of a loopback TCP connection: ESTABLISHED, its inode; not a four-tuple nobody has", async () => {
    const client = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
    try {
      const t: FullTuple = { proto: "tcp", family: "ipv4", srcAddr: "127.0.0.1", srcPort: client.localPort, dstAddr: "127.0.0.1", dstPort: server.port };
      const found = diag.find(t) as DiagSocket;
      expect(found.state).toBe(1);
      expect(found.uid).toBe(0);
      const own = new Set(readdirSync("/proc/self/fd").map((fd) => { try { return inodeOf(Number(fd)); } catch { return 0; } }));
      expect(own.has(found.inode)).toBe(true);
      expect(diag.find({ ...t, dstPort: t.dstPort === 1 ? 2 : 1 })).toBeNull();
    } finally {
      client.end();
    }
  });

  test("finds a UDP socket that sent without connect(), by where it sent to", () => {
    const fd = libc().socket(2, 2, 0); // AF_INET, SOCK_DGRAM
    try {
      const to = new Uint8Array(16);
      new DataView(to.buffer).setUint16(0, 2, true);
      new DataView(to.buffer).setUint16(2, 9, false);
      to.set([127, 0, 0, 1], 4);
      expect(Number(libc().sendto(fd, Uint8Array.of(0), 1, 0, to, 16))).toBe(1);
      const local = new Uint8Array(16);
      libc().getsockname(fd, local, new Uint32Array([16]));
      const port = new DataView(local.buffer).getUint16(2, false);
      const found = diag.find({ proto: "udp", family: "ipv4", srcAddr: "127.0.0.1", srcPort: port, dstAddr: "127.0.0.1", dstPort: 9 }) as DiagSocket;
      expect(found?.inode).toBe(inodeOf(fd));
      // By its local end alone (what the DNS responder knows of a redirected query's sender).
      const byLocal = diag.findUdpByLocal("ipv4", "127.0.0.1", port);
      expect(Array.isArray(byLocal) ? byLocal.map((s) => s.inode) : byLocal).toEqual([inodeOf(fd)]);
      expect(diag.findUdpByLocal("ipv4", "127.0.0.1", port === 1 ? 2 : 1)).toEqual([]);
    } finally {
      libc().close(fd);
    }
  });
});
