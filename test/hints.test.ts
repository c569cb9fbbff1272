// The hint a bypass line carries (src/events/hints.ts), chosen from the packet alone. The parser's
// path to it is in test/kernel-log.test.ts; here every branch and their order, directly.
import { describe, expect, test } from "bun:test";
import { bypassHint, HINTS } from "../src/events/hints.ts";

const proxy = { addrs: ["10.200.0.1", "fd70:7077:ac8::1"], port: 3128 };

describe("bypassHint", () => {
  test("port 53: DNS, over UDP or TCP, wherever it goes (even to the proxy host)", () => {
    expect(bypassHint({ proto: "udp", dstAddr: "8.8.8.8", dstPort: 53 })).toBe(HINTS.dnsUdp);
    expect(bypassHint({ proto: "tcp", dstAddr: "8.8.8.8", dstPort: 53 })).toBe(HINTS.dnsTcp);
    expect(bypassHint({ proto: "udp", dstAddr: "10.200.0.1", dstPort: 53, proxy })).toBe(HINTS.dnsUdp);
    expect(bypassHint({ proto: "tcp", dstAddr: "fd70:7077:ac8::1", dstPort: 53, proxy })).toBe(HINTS.dnsTcp);
  });

  test("other UDP: UDP, even to the proxy host on the proxy's port", () => {
    expect(bypassHint({ proto: "udp", dstAddr: "198.51.100.7", dstPort: 443 })).toBe(HINTS.udp);
    expect(bypassHint({ proto: "udp", dstAddr: "10.200.0.1", dstPort: 3128, proxy })).toBe(HINTS.udp);
    expect(bypassHint({ proto: "udp", dstAddr: "10.200.0.1", dstPort: 8080, proxy })).toBe(HINTS.udp);
  });

  test("TCP to any of the proxy's addresses on another port: wrong proxy port", () => {
    expect(bypassHint({ proto: "tcp", dstAddr: "10.200.0.1", dstPort: 8080, proxy })).toBe(HINTS.wrongProxyPort);
    expect(bypassHint({ proto: "tcp", dstAddr: "fd70:7077:ac8::1", dstPort: 80, proxy })).toBe(HINTS.wrongProxyPort);
  });

  test("other TCP: the proxy's own port, another host, or no proxy known", () => {
    expect(bypassHint({ proto: "tcp", dstAddr: "10.200.0.1", dstPort: 3128, proxy })).toBe(HINTS.tcp);
    expect(bypassHint({ proto: "tcp", dstAddr: "198.51.100.7", dstPort: 8080, proxy })).toBe(HINTS.tcp);
    expect(bypassHint({ proto: "tcp", dstAddr: "10.200.0.1", dstPort: 8080 })).toBe(HINTS.tcp);
    expect(bypassHint({ proto: "tcp", dstAddr: "10.200.0.1", dstPort: 8080, proxy: undefined })).toBe(HINTS.tcp);
    expect(bypassHint({ proto: "tcp", dstAddr: "10.200.0.1", dstPort: 8080, proxy: { addrs: [], port: 3128 } })).toBe(HINTS.tcp);
  });

  test("addresses are compared as given: callers pass canonical text", () => {
    expect(bypassHint({ proto: "tcp", dstAddr: "FD70:7077:AC8::1", dstPort: 80, proxy })).toBe(HINTS.tcp);
  });

  test("five different texts, each naming its fix", () => {
    expect(new Set(Object.values(HINTS)).size).toBe(5);
    expect(HINTS.dnsUdp).toContain("/etc/resolv.conf");
    expect(HINTS.udp).toContain("--disable-quic");
    expect(HINTS.wrongProxyPort).toContain("wrong proxy port");
    expect(HINTS.tcp).toContain("NODE_USE_ENV_PROXY=1");
    expect(HINTS.tcp).toContain("GRPC_PROXY");
  });
});
