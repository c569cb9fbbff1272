// The hint a bypass line carries (src/events/hints.ts), chosen from the packet alone. The parser's
// path to it is in test/kernel-log.test.ts; here every branch and their order, directly.
import { describe, expect, test } from "bun:test";
import { bypassHint, HINTS, PROGRAM_HINTS, programOf } from "../src/events/hints.ts";

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

  test("six different texts, each naming its fix", () => {
    expect(new Set(Object.values(HINTS)).size).toBe(6);
    expect(HINTS.dnsUdp).toContain("/etc/resolv.conf");
    expect(HINTS.udp).toContain("--disable-quic");
    expect(HINTS.wrongProxyPort).toContain("wrong proxy port");
    expect(HINTS.tcp).toContain("NODE_USE_ENV_PROXY=1");
    expect(HINTS.tcp).toContain("GRPC_PROXY");
  });
});

describe("hints that know the program", () => {
  const proc = (exe: string, cmdline: string[] = [exe]) => ({ resolved: true as const, pid: 7, exe, cmdline, uid: 0, start_time: null, ancestors: [], also_held_by: [] });
  const tcp = { proto: "tcp" as const, dstAddr: "198.51.100.7", dstPort: 443 };
  const dns = { proto: "udp" as const, dstAddr: "10.255.255.53", dstPort: 53 };

  test("node by its version where the path shows it; npm by its script", () => {
    expect(programOf(proc("/usr/bin/node"))).toBe("node");
    expect(programOf(proc("/root/.nvm/versions/node/v20.11.1/bin/node"))).toBe("old-node");
    expect(programOf(proc("/root/.nvm/versions/node/v22.21.0/bin/node"))).toBe("node");
    expect(programOf(proc("/opt/node-v18.20.0-linux-x64/bin/node"))).toBe("old-node");
    expect(programOf(proc("/usr/bin/node", ["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "ci"]))).toBe("npm");
  });

  test("python, pip, java, go, curl, git; others and unresolved processes have none", () => {
    expect(programOf(proc("/usr/bin/python3.11"))).toBe("python");
    expect(programOf(proc("/usr/bin/python3.11", ["python3", "-m", "pip", "install", "x"]))).toBe("pip");
    expect(programOf(proc("/usr/lib/jvm/java-17-openjdk-amd64/bin/java"))).toBe("java");
    expect(programOf(proc("/usr/local/go/bin/go"))).toBe("go");
    expect(programOf(proc("/usr/bin/curl"))).toBe("curl");
    expect(programOf(proc("/usr/lib/git-core/git-remote-https"))).toBe("git");
    expect(programOf(proc("/usr/bin/wget"))).toBeNull();
    expect(programOf({ resolved: false, why: "gone" })).toBeNull();
    expect(programOf(null)).toBeNull();
  });

  test("the program's own hint, for DNS as for TCP; UDP and other protocols keep theirs", () => {
    const node = proc("/usr/bin/node");
    expect(bypassHint({ ...tcp, process: node })).toBe(PROGRAM_HINTS.node.tcp);
    expect(bypassHint({ ...dns, process: node })).toBe(PROGRAM_HINTS.node.dns);
    expect(bypassHint({ ...dns, proto: "tcp", process: proc("/usr/bin/curl") })).toBe(PROGRAM_HINTS.curl.dns);
    expect(bypassHint({ ...tcp, process: proc("/usr/bin/wget") })).toBe(HINTS.tcp);
    expect(bypassHint({ proto: "udp", dstAddr: "198.51.100.7", dstPort: 123, process: node })).toBe(HINTS.udp);
    expect(bypassHint({ proto: "icmp", dstAddr: "198.51.100.7", dstPort: 0, process: node })).toBe(HINTS.other);
    expect(bypassHint({ proto: "udplite", dstAddr: "198.51.100.7", dstPort: 9 })).toBe(HINTS.other);
  });
});
