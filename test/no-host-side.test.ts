// The sandbox has no host side: proxywall runs here inside a test namespace of its own ("outer",
// standing for the host), and the tests check that the outer namespace's firewall and IPv6
// settings do not matter, that nothing in it changes during a run, and that nothing outside the
// sandbox can reach the proxy's door. Upstream servers live in a second test namespace.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { inNetns } from "../src/sys/netns.ts";
import { eventsOf } from "./support/events.ts";
import { describePrivileged, MAIN, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { background } from "./support/process.ts";
import { link, testNetns, type TestNetns } from "./support/netns.ts";
import { waitFor } from "./support/wait.ts";

/** Everything of the outer namespace's network that a sandbox could touch, as text. */
function networkOf(ns: TestNetns): string {
  const quiet = (script: string) => ns.sh(`${script} 2>/dev/null || true`);
  return [
    ns.sh("ip -d -j link show"),
    ns.sh("ip -j addr show"),
    ns.sh("ip -j route show table all"),
    ns.sh("ip -6 -j route show table all"),
    quiet("nft list ruleset"),
    // Counters and the header's timestamp change on their own.
    quiet("iptables-save -c | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
    quiet("ip6tables-save -c | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
    quiet("iptables-legacy-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
    quiet("ip6tables-legacy-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'"),
  ].join("\n");
}

describePrivileged("a sandbox with no host side", () => {
  let up: TestNetns;
  let upAddrs: ReturnType<typeof link>;
  let outer: TestNetns;
  let web: ReturnType<typeof Bun.serve>;

  beforeAll(() => {
    outer = testNetns("out");
    up = testNetns("up");
    upAddrs = link(outer, up, "10.209.0.0", "fd70:7099:1");
    // The listening socket is made inside the upstream namespace and stays there.
    web = inNetns(up.path, () => Bun.serve({ hostname: "::", port: 0, fetch: (req) => new Response(`origin saw ${new URL(req.url).pathname}\n`) }));
  });

  afterAll(() => {
    web?.stop(true);
    up?.remove();
    outer?.remove();
  });

  test("proxied requests work where proxywall's own namespace drops all unsolicited input (IPv4 and IPv6)", async () => {
    // As ufw's "deny incoming" does: replies and (IPv6) neighbour discovery pass, nothing else.
    for (const t of ["iptables", "ip6tables"]) outer.sh(`${t} -P INPUT DROP; ${t} -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`);
    outer.sh("ip6tables -A INPUT -p ipv6-icmp -j ACCEPT");
    try {
      const script = `curl -sS -m 10 http://${upAddrs.b4}:${web.port}/v4 && curl -sS -m 10 "http://[${upAddrs.b6}]:${web.port}/v6"`;
      const allow = ["--allow", `${upAddrs.b4}:${web.port}`, "--allow", `[${upAddrs.b6}]:${web.port}`];
      const r = await proxywall(["run", ...TEST_ARGS, ...allow, "--user", "65534", "--", "sh", "-c", script], { prefix: outer.prefix });
      expect(r.stdout).toBe("origin saw /v4\norigin saw /v6\n");
      expect(r.code).toBe(0);
      expect(eventsOf(r.events, "proxy_connect").map((e) => [e.dst_host, e.outcome])).toEqual([
        [upAddrs.b4, "ok"],
        [upAddrs.b6, "ok"],
      ]);
    } finally {
      for (const t of ["iptables", "ip6tables"]) outer.sh(`${t} -P INPUT ACCEPT; ${t} -F INPUT`);
    }
  });

  test("with IPv6 disabled where proxywall runs, the sandbox comes up and IPv6 attempts still fail at once and are reported", async () => {
    outer.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
    try {
      const probe = `import socket, time
for fam, addr in ((socket.AF_INET6, "2001:db8::7"), (socket.AF_INET, "198.51.100.7")):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5); t = time.monotonic()
    try: s.connect((addr, 80)); print(addr, "connected")
    except OSError as e: print(addr, type(e).__name__, "slow" if time.monotonic() - t > 3 else "fast")`;
      const r = await proxywall(["run", ...TEST_ARGS, "--", "python3", "-c", probe], { prefix: outer.prefix });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("2001:db8::7 ConnectionRefusedError fast\n198.51.100.7 ConnectionRefusedError fast\n");
      expect(eventsOf(r.events, "sandbox_ready")[0]).toMatchObject({ sandbox_ipv6: "fd70:7077::2", detection: "verified" });
      const seen = eventsOf(r.events, "bypass_detect").map((e) => [e.family, e.dst_addr, e.process?.exe?.includes("python")]);
      expect(seen).toEqual([
        ["ipv6", "2001:db8::7", true],
        ["ipv4", "198.51.100.7", true],
      ]);
      expect(eventsOf(r.events, "degraded").map((e) => e.component)).toEqual([]);
    } finally {
      outer.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0");
    }
  });

  test("during a run, the links, addresses, routes and rulesets where proxywall runs are exactly as before", async () => {
    const before = networkOf(outer);
    const run = background([...outer.prefix, process.execPath, MAIN, "run", ...TEST_ARGS, "--", "sleep", "3"]);
    try {
      await waitFor("sandbox_ready", () => run.out.stderr.includes('"event":"sandbox_ready"') || (run.closed && "closed"), 20_000);
      expect(networkOf(outer)).toBe(before);
    } finally {
      expect(await run.finish(20_000)).toBe(0);
    }
    expect(networkOf(outer)).toBe(before);
  });

  test("nothing outside the sandbox reaches its door: not a neighbour, not proxywall's own namespace, not another sandbox", async () => {
    using nb = testNetns("nb");
    const nbAddrs = link(outer, nb, "10.209.4.0", "fd70:7099:4");
    nb.sh(`ip route add default via ${nbAddrs.a4}; ip -6 route add default via ${nbAddrs.a6}`);
    // Each target: "refused", "unreachable" or "timeout" is a pass; "connected" fails the test.
    const tryAll = (targets: string[]) => `import socket
for t in ${JSON.stringify(targets)}:
    host, port = t.rsplit(":", 1); host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET); s.settimeout(1)
    try: s.connect((host, int(port))); r = "connected"
    except ConnectionRefusedError: r = "refused"
    except socket.timeout: r = "timeout"
    except OSError as e: r = "unreachable"
    print(t, r)`;
    const doors = ["127.0.0.1:3128", "[::1]:3128", "10.200.0.2:3128", "[fd70:7077::2]:3128"];
    // Sandbox B, running beside A, tries every address A's door could have.
    const a = background([...outer.prefix, process.execPath, MAIN, "run", ...TEST_ARGS, "--", "sleep", "4"]);
    try {
      await waitFor("sandbox_ready", () => a.out.stderr.includes('"event":"sandbox_ready"') || (a.closed && "closed"), 20_000);
      const fromNeighbour = nb.sh(`python3 -c '${tryAll([...doors, `${nbAddrs.a4}:3128`, `[${nbAddrs.a6}]:3128`])}'`);
      const fromOuter = outer.sh(`python3 -c '${tryAll(doors)}'`);
      // The system's python: a pyenv shim under /root is out of reach for uid 65534.
      const b = await proxywall(["run", ...TEST_ARGS, "--user", "65534", "--", "/usr/bin/python3", "-c", tryAll(["10.200.0.2:3128", "[fd70:7077::2]:3128", `${nbAddrs.a4}:3128`])], { prefix: outer.prefix });
      expect(b.text.filter((l) => !l.startsWith("proxywall:"))).toEqual([]);
      for (const line of [...fromNeighbour.trim().split("\n"), ...fromOuter.trim().split("\n"), ...b.stdout.trim().split("\n")]) {
        expect(line).not.toEndWith("connected");
      }
      expect(fromNeighbour.trim().split("\n")).toHaveLength(6);
      expect(fromOuter.trim().split("\n")).toHaveLength(4);
      expect({ out: b.stdout, text: b.text }).toEqual({ out: expect.any(String), text: [] });
      expect(b.stdout.trim().split("\n")).toHaveLength(3);
    } finally {
      expect(await a.finish(20_000)).toBe(0);
    }
  });
});
