// Which sockets match a packet, from /proc/PID/net/{tcp,udp}{,6} (src/monitor/socket-table.ts):
// captured table text, and this process's own loopback sockets.
import { afterAll, describe, expect, test } from "bun:test";
import { readlinkSync, readdirSync } from "node:fs";
import { findSockets, socketsInTable } from "../src/monitor/socket-table.ts";
import type { FiveTuple } from "../src/net/five-tuple.ts";

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
// 10.200.0.2:47578 -> 198.51.100.7:80 in SYN_SENT (02), a listener on *:2024, and a UDP socket
// that sent without connect() (no remote end) from 10.200.0.2:5353.
const TCP = `${HEADER}
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 535 1 0000000033ca6889 100 0 0 10 0
   1: 0200C80A:B9DA 076433C6:0050 02 00000001:00000000 01:00000014 00000000  1000        0 91234 2 0000000072b4f310 100 0 0 10 -1
`;
const UDP = `${HEADER}
  12: 0200C80A:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77001 2 00000000e9182b40 0
`;
// fd70:7077:ac8:4::2 port 41000 -> 2001:db8::7 port 443, ESTABLISHED (01).
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 777070FD0400C80A0000000002000000:A028 B80D0120000000000000000007000000:01BB 01 00000000:00000000 00:00000000 00000000     0        0 88001 1 000000003bd51465 20 4 30 10 -1
`;

function tuple(t: Partial<FiveTuple>): FiveTuple {
  return { proto: "tcp", family: "ipv4", srcAddr: "10.200.0.2", srcPort: 47578, dstAddr: "198.51.100.7", dstPort: 80, ...t };
}

describe("socketsInTable", () => {
  test("the connecting socket by its four-tuple, with its state; the listener is no match", () => {
    expect(socketsInTable(TCP, tuple({}), false)).toEqual([{ inode: 91234, state: 2 }]);
    expect(socketsInTable(TCP, tuple({ srcAddr: null, srcPort: null }), false)).toEqual([{ inode: 91234, state: 2 }]);
  });

  test("another source port, destination or port: nothing", () => {
    expect(socketsInTable(TCP, tuple({ srcPort: 47579 }), false)).toEqual([]);
    expect(socketsInTable(TCP, tuple({ dstAddr: "198.51.100.8" }), false)).toEqual([]);
    expect(socketsInTable(TCP, tuple({ dstPort: 443 }), false)).toEqual([]);
    expect(socketsInTable(TCP, tuple({ srcAddr: "10.200.0.3" }), false)).toEqual([]);
  });

  test("UDP without connect(): the socket shows no remote end and matches any destination", () => {
    expect(socketsInTable(UDP, tuple({ proto: "udp", srcPort: 5353, dstAddr: "198.51.100.53", dstPort: 53 }), false)).toEqual([{ inode: 77001, state: 7 }]);
    // TCP never matches an unconnected socket: that is a listener.
    expect(socketsInTable(UDP, tuple({ proto: "tcp", srcPort: 5353 }), false)).toEqual([]);
  });

  test("IPv6 addresses in the table's word order", () => {
    const t = tuple({ family: "ipv6", srcAddr: "fd70:7077:ac8:4::2", srcPort: 41000, dstAddr: "2001:db8::7", dstPort: 443 });
    expect(socketsInTable(TCP6, t, true)).toEqual([{ inode: 88001, state: 1 }]);
    expect(socketsInTable(TCP6, { ...t, dstAddr: "2001:db8::8" }, true)).toEqual([]);
  });

  test("an empty or cut table gives nothing, never a throw", () => {
    expect(socketsInTable("", tuple({}), false)).toEqual([]);
    expect(socketsInTable(HEADER, tuple({}), false)).toEqual([]);
    expect(socketsInTable(`${HEADER}\n   1: 0200C80A:B9DA 076433C6:0050 02`, tuple({}), false)).toEqual([]);
  });
});

/** Inodes of the sockets this process has open. */
function ownSocketInodes(): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {}
  }
  return out;
}

describe("findSockets on this process's own loopback connection", () => {
  const server = Bun.listen({ hostname: "::", port: 0, socket: { data() {} } });
  afterAll(() => server.stop(true));

  test("the client socket (IPv4 table) and the accepted one (dual-stack, IPv6 table, IPv4-mapped)", async () => {
    const client = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
    try {
      const clientPort = client.localPort;
      const out = tuple({ srcAddr: "127.0.0.1", srcPort: clientPort, dstAddr: "127.0.0.1", dstPort: server.port });
      const found = findSockets(process.pid, out);
      expect(found).toHaveLength(1);
      expect(found[0]!.state).toBe(1); // ESTABLISHED
      expect(ownSocketInodes().has(found[0]!.inode)).toBe(true);
      // The server's end, as a packet it sent back would show it.
      const back = tuple({ srcAddr: "127.0.0.1", srcPort: server.port, dstAddr: "127.0.0.1", dstPort: clientPort });
      const accepted = findSockets(process.pid, back);
      expect(accepted).toHaveLength(1);
      expect(accepted[0]!.inode).not.toBe(found[0]!.inode);
    } finally {
      client.end();
    }
  });

  test("a pid that does not exist has no tables: nothing", () => {
    expect(findSockets(2 ** 22 + 1, tuple({}))).toEqual([]);
  });
});
