// decodePacket (src/net/ip-packet.ts) on hand-built packets, truncations and garbage.
import { describe, expect, test } from "bun:test";
import { dnsQueryName } from "../src/net/dns-query.ts";
import { decodePacket, TCP_SYN } from "../src/net/ip-packet.ts";
import { dnsQuery, ipv4, ipv6, tcpHeader, udpHeader } from "./support/packets.ts";
import { mulberry32 } from "./support/prng.ts";

const SRC6 = [0xfd00, 0x203, 0, 0, 0, 0, 0, 2];
const DST6 = [0x2001, 0xdb8, 0, 0, 0, 0, 0, 7];

describe("decodePacket", () => {
  test("IPv4 TCP SYN", () => {
    const p = decodePacket(ipv4(6, "10.203.0.2", "198.51.100.7", tcpHeader(51922, 443, TCP_SYN, [2, 4, 5, 0xb4])));
    expect(p).toEqual({
      family: "ipv4",
      proto: "tcp",
      srcAddr: "10.203.0.2",
      srcPort: 51922,
      dstAddr: "198.51.100.7",
      dstPort: 443,
      tcpFlags: TCP_SYN,
      l4Payload: new Uint8Array(0),
    });
  });

  test("IPv4 with options, TCP with payload", () => {
    const data = [1, 2, 3, 4, 5];
    const p = decodePacket(ipv4(6, "10.0.0.1", "203.0.113.9", [...tcpHeader(1000, 80, 0x18), ...data], { options: [1, 1, 1, 0] }));
    expect(p?.dstAddr).toBe("203.0.113.9");
    expect(p?.dstPort).toBe(80);
    expect(p?.tcpFlags).toBe(0x18);
    expect([...p!.l4Payload]).toEqual(data);
  });

  test("IPv4 UDP: payload bounded by the UDP length, trailing bytes ignored", () => {
    const query = dnsQuery("bypass.example");
    const bytes = ipv4(17, "10.203.0.2", "198.51.100.7", [...udpHeader(40000, 53, query.length), ...query]);
    const padded = Uint8Array.from([...bytes, 0xee, 0xee]); // capture longer than the packet
    for (const b of [bytes, padded]) {
      const p = decodePacket(b);
      expect(p).toMatchObject({ family: "ipv4", proto: "udp", srcPort: 40000, dstPort: 53, dstAddr: "198.51.100.7" });
      expect(p!.tcpFlags).toBeUndefined();
      expect([...p!.l4Payload]).toEqual(query);
      expect(dnsQueryName(p!.l4Payload)).toBe("bypass.example");
    }
  });

  test("payload cut by the capture length is returned as far as captured", () => {
    const data = new Array(100).fill(7);
    const bytes = ipv4(17, "10.203.0.2", "198.51.100.7", [...udpHeader(1, 2, data.length), ...data]);
    const p = decodePacket(bytes.subarray(0, 20 + 8 + 10));
    expect(p?.l4Payload.length).toBe(10);
  });

  test("IPv4 non-first fragment gives null; other protocols decode by name", () => {
    expect(decodePacket(ipv4(6, "10.0.0.1", "10.0.0.2", tcpHeader(1, 2, 2), { frag: 0x0010 }))).toBeNull();
    expect(decodePacket(ipv4(1, "10.0.0.1", "10.0.0.2", [8, 0, 0, 0, 0, 0, 0, 0]))?.proto).toBe("icmp");
    expect(decodePacket(ipv4(132, "10.0.0.1", "10.0.0.2", new Array(20).fill(0)))?.proto).toBe("sctp");
  });

  test("first fragment (MF set, offset 0) still decodes", () => {
    const p = decodePacket(ipv4(17, "10.0.0.1", "10.0.0.2", [...udpHeader(5, 53, 100), 1, 2], { frag: 0x2000 }));
    expect(p?.dstPort).toBe(53);
  });

  test("IPv6 TCP, addresses in RFC 5952 form", () => {
    const p = decodePacket(ipv6(6, SRC6, DST6, tcpHeader(40001, 443, TCP_SYN)));
    expect(p).toMatchObject({ family: "ipv6", proto: "tcp", srcAddr: "fd00:203::2", dstAddr: "2001:db8::7", srcPort: 40001, dstPort: 443, tcpFlags: TCP_SYN });
    const q = decodePacket(ipv6(17, [0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6407], udpHeader(1, 53, 0)));
    expect(q?.srcAddr).toBe("2001:db8:0:1:1:1:1:1");
    expect(q?.dstAddr).toBe("::ffff:198.51.100.7");
  });

  test("IPv6 extension headers: hop-by-hop, routing, destination options, fragment, AH", () => {
    const hbh = (next: number) => [next, 0, 1, 4, 0, 0, 0, 0]; // 8 bytes, PadN
    const dst = (next: number) => [next, 1, ...new Array(14).fill(0)]; // 16 bytes
    const rt = (next: number) => [next, 0, 0, 0, 0, 0, 0, 0];
    const frag = (next: number, offset: number) => [next, 0, (offset << 3) >> 8, (offset << 3) & 255, 0, 0, 0, 9];
    const ah = (next: number) => [next, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // (1+2)*4 = 12 bytes
    const tcp = tcpHeader(1234, 443, TCP_SYN);
    const chain = [...hbh(43), ...rt(60), ...dst(44), ...frag(51, 0), ...ah(6), ...tcp];
    const p = decodePacket(ipv6(0, SRC6, DST6, chain));
    expect(p).toMatchObject({ proto: "tcp", srcPort: 1234, dstPort: 443 });
    // A non-first fragment has no transport header.
    expect(decodePacket(ipv6(44, SRC6, DST6, [...frag(6, 100), ...tcp]))).toBeNull();
    // No next header, ICMPv6, and an endless chain of hop-by-hop headers.
    expect(decodePacket(ipv6(59, SRC6, DST6, []))?.proto).toBe("ip-59"); // no next header
    expect(decodePacket(ipv6(58, SRC6, DST6, [128, 0, 0, 0, 0, 0, 0, 0]))?.proto).toBe("icmpv6");
    expect(decodePacket(ipv6(0, SRC6, DST6, new Array(20).fill(hbh(0)).flat()))).toBeNull();
  });

  test("every truncation of valid packets: null or a decode, never a throw", () => {
    const packets = [
      ipv4(6, "10.203.0.2", "198.51.100.7", tcpHeader(51922, 443, TCP_SYN, [2, 4, 5, 0xb4])),
      ipv4(17, "10.203.0.2", "198.51.100.7", [...udpHeader(40000, 53, 20), ...dnsQuery("bypass.example")]),
      ipv6(0, SRC6, DST6, [6, 0, 1, 4, 0, 0, 0, 0, ...tcpHeader(1, 2, 2)]),
    ];
    for (const full of packets) {
      for (let n = 0; n <= full.length; n++) {
        const p = decodePacket(full.subarray(0, n));
        if (p) expect(p.dstPort).toBeGreaterThan(0);
      }
      expect(decodePacket(full.subarray(0, 19))).toBeNull();
    }
  });

  test("bad headers give null", () => {
    expect(decodePacket(new Uint8Array(0))).toBeNull();
    expect(decodePacket(Uint8Array.of(0x45))).toBeNull();
    const bad = ipv4(6, "1.2.3.4", "5.6.7.8", tcpHeader(1, 2, 2));
    const ihl4 = bad.slice();
    ihl4[0] = 0x44; // IHL below 5
    expect(decodePacket(ihl4)).toBeNull();
    const shortTotal = bad.slice();
    shortTotal[2] = 0;
    shortTotal[3] = 10; // total length below the header
    expect(decodePacket(shortTotal)).toBeNull();
    const doff = bad.slice();
    doff[20 + 12] = 0x40; // TCP data offset 4
    expect(decodePacket(doff)).toBeNull();
    const v5 = bad.slice();
    v5[0] = 0x55;
    expect(decodePacket(v5)).toBeNull();
  });

  test("random garbage never throws", () => {
    const next = mulberry32(0x5eed);
    let decoded = 0;
    for (let i = 0; i < 20000; i++) {
      const len = Math.floor(next() * 120);
      const b = new Uint8Array(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(next() * 256);
      if (len > 0 && next() < 0.5) b[0] = next() < 0.5 ? 0x45 : 0x60; // reach deeper code paths
      if (len > 9 && next() < 0.5) b[9] = next() < 0.5 ? 6 : 17;
      if (len > 6 && b[0] === 0x60 && next() < 0.5) b[6] = [0, 6, 17, 43, 44, 60][Math.floor(next() * 6)]!;
      const p = decodePacket(b);
      if (p) {
        decoded++;
        expect(p.srcPort).toBeLessThan(65536);
        dnsQueryName(p.l4Payload);
        dnsQueryName(p.l4Payload, true);
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});

describe("decodePacket: the other protocols the fence logs", () => {
  test("ICMP echo (IPv4) and ICMPv6 echo: named, ports 0, the message type", () => {
    expect(decodePacket(ipv4(1, "10.200.0.2", "198.51.100.7", [8, 0, 0, 0, 0, 1, 0, 1]))).toMatchObject({ proto: "icmp", srcPort: 0, dstPort: 0, icmpType: 8, dstAddr: "198.51.100.7" });
    expect(decodePacket(ipv6(58, SRC6, DST6, [128, 0, 0, 0, 0, 1, 0, 1]))).toMatchObject({ proto: "icmpv6", family: "ipv6", dstPort: 0, icmpType: 128, dstAddr: "2001:db8::7" });
  });

  test("UDP-Lite has ports (its length field is a checksum coverage); SCTP too; an unnamed protocol is ip-N", () => {
    const ul = decodePacket(ipv4(136, "10.200.0.2", "198.51.100.7", [0x9c, 0x40, 0, 9, 0, 8, 0, 0, 1, 2, 3]));
    expect(ul).toMatchObject({ proto: "udplite", srcPort: 40000, dstPort: 9 });
    expect([...ul!.l4Payload]).toEqual([1, 2, 3]);
    expect(decodePacket(ipv6(132, SRC6, DST6, [0x9c, 0x40, 0x0b, 0x59, 0, 0, 0, 0]))).toMatchObject({ proto: "sctp", srcPort: 40000, dstPort: 2905 });
    expect(decodePacket(ipv4(253, "10.200.0.2", "198.51.100.7", [1, 2]))).toMatchObject({ proto: "ip-253", dstPort: 0 });
  });
});
