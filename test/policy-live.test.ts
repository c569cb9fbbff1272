// The policy (issue #10) against real clients: curl, python3 urllib and node, run by proxywall as
// uid 65534, through the built-in proxy. proxywall runs inside a test namespace of its own
// ("outer", standing for the host, so its addresses are known) and in a mount namespace of the
// test's own where /etc/hosts and /etc/resolv.conf are files the test wrote (names resolve to the
// test's namespaces, or through a DNS server of the test's own). Every listener a request could
// reach is the test's own and counts what reaches it: a refusal is asserted as 403 (or the status
// of its own), a proxy_connect line naming the process, and a count that stayed 0.
//
// Network safety: a live request through the proxy goes only to listeners this file started, in
// "outer" (loopback and its own addresses, which the guard must refuse) or in "up" (joined to
// outer by a veth pair). Outside addresses (metadata, documentation ranges) are asked of the
// decision function and `policy check` only (at the end): had the guard failed, such a request
// would have left the machine. A neighbour namespace routed to the proxy's door is refused in
// no-host-side.test.ts.
//
// Node: the machine's node is 20, which does not read NODE_USE_ENV_PROXY (Node 24+), so the node
// client talks to the proxy itself with http.request (an absolute URI, or method CONNECT), no agent.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { decideResolved, decideTarget, loadPolicy, type Policy } from "../src/policy/index.ts";
import { startDnsServer, type DnsServer } from "./support/dns-server.ts";
import { hostsFile, resolvConf, withEtcFiles } from "./support/etc-files.ts";
import { eventsOf } from "./support/events.ts";
import { link, testNetns, type TestNetns } from "./support/netns.ts";
import { describePrivileged, proxywall, TEST_ARGS, type Run } from "./support/privileged.ts";
import { countingListener, httpReply, type CountingListener } from "./support/tcp-counter.ts";
import { tempDir, type TempDir } from "./support/temp.ts";
import { runCli } from "./support/cli.ts";

const PYTHON = "/usr/bin/python3";
const NODE = "/usr/bin/node";
const CURL = "/usr/bin/curl";
/** The resolver of outer's own: a DNS server of the test's own on outer's loopback. */
const DNS_HOST = "127.0.0.53";

// One request per authority (HOST:PORT as it goes into a URL or a CONNECT line), one output line
// each: CLIENT TAB METHOD TAB AUTHORITY TAB STATUS TAB X-Proxywall-Denied (or "-") TAB body.
const PY_CLIENT = String.raw`
import sys, urllib.request, urllib.error
method, auths = sys.argv[1], sys.argv[2:]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}))
for a in auths:
    st, denied, body = "error", "-", ""
    try:
        r = opener.open(("http://%s/python" if method == "GET" else "https://%s/python") % a, timeout=10)
        st, body = r.status, r.read().decode().strip()
        r.close()
    except urllib.error.HTTPError as e:
        st, denied = e.code, e.headers.get("X-Proxywall-Denied") or "-"
        e.close()
    except OSError as e:
        # urllib reports a refused CONNECT as "Tunnel connection failed: 403 Forbidden".
        words = str(e).split("Tunnel connection failed: ")
        st = words[1].split(" ")[0] if len(words) > 1 else "error " + type(e).__name__ + " " + str(e)
    print("python\t%s\t%s\t%s\t%s\t%s" % (method, a, st, denied, body), flush=True)
`;

const NODE_CLIENT = String.raw`
const http = require("http");
const [method, ...auths] = process.argv.slice(2);
const proxy = { host: "127.0.0.1", port: 3128 };
function once(a) {
  return new Promise((resolve) => {
    const done = (st, denied, body) => resolve([st, denied || "-", body || ""]);
    const req = method === "GET"
      ? http.request({ ...proxy, method: "GET", path: "http://" + a + "/node", headers: { Host: a } }, (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => done(res.statusCode, res.headers["x-proxywall-denied"], body.trim()));
        })
      : http.request({ ...proxy, method: "CONNECT", path: a, headers: { Host: a } });
    req.on("connect", (res, socket) => {
      socket.destroy();
      done(res.statusCode, res.headers["x-proxywall-denied"]);
    });
    req.on("error", (e) => done("error " + e.code));
    req.setTimeout(10000, () => req.destroy(new Error("timeout")));
    req.end();
  });
}
(async () => {
  for (const a of auths) {
    const [st, denied, body] = await once(a);
    console.log(["node", method, a, st, denied, body].join("\t"));
  }
})();
`;

// curl: -D - prints the response head (for CONNECT, the proxy's answer to it), -g keeps [v6] as is.
const CURL_CLIENT = String.raw`
method=$1; shift
body=$(mktemp)
for a in "$@"; do
  if [ "$method" = GET ]; then h=$(curl -sg -m 10 -x http://127.0.0.1:3128 -D - -o "$body" "http://$a/curl")
  else h=$(curl -sg -m 10 -x http://127.0.0.1:3128 -p -D - -o "$body" "http://$a/curl"); fi
  st=$(printf '%s\n' "$h" | head -n 1 | cut -d ' ' -f 2)
  denied=$(printf '%s\n' "$h" | tr -d '\r' | sed -n 's/^[Xx]-[Pp]roxywall-[Dd]enied: //p' | head -n 1)
  printf 'curl\t%s\t%s\t%s\t%s\t%s\n' "$method" "$a" "\${st:-error}" "\${denied:--}" "$(cat "$body")"
  : > "$body"
done
rm -f "$body"
`.replace(/\\\$/g, "$");

interface Reply {
  client: string;
  method: string;
  auth: string;
  status: string;
  denied: string;
  body: string;
}

function replies(stdout: string): Reply[] {
  return stdout
    .split("\n")
    .filter((l) => l.split("\t").length >= 5)
    .map((l) => {
      const [client, method, auth, status, denied, body] = l.split("\t");
      return { client: client!, method: method!, auth: auth!, status: status!, denied: denied!, body: body ?? "" };
    });
}

/** The executable each client's process is: the kernel's /proc/PID/exe, symlinks resolved. */
function realExe(path: string): string {
  return Bun.spawnSync(["readlink", "-f", path]).stdout.toString().trim();
}

describePrivileged("the policy with real clients (issue #10)", () => {
  let outer: TestNetns;
  let up: TestNetns;
  let addrs: ReturnType<typeof link>;
  let dir: TempDir;
  /** Everything in outer (loopback, its own addresses, v4 and v6) on one port: the guard must keep every request from it. */
  let hostListener: CountingListener;
  /** The upstream in "up", on a private address, answering `origin saw PATH`. */
  let web: CountingListener;
  /** A listener in "up" that accepts and says nothing: it counts bytes that reach it. */
  let silent: CountingListener;
  let dns: DnsServer;
  let etc: string[];
  const exe: Record<string, string> = {};

  beforeAll(async () => {
    outer = testNetns("plo");
    up = testNetns("plu");
    addrs = link(outer, up, "10.209.40.0", "fd70:7099:40");
    dir = tempDir("pw-policy-live-");
    hostListener = await countingListener(outer.path, { reply: () => httpReply("the host itself served this\n") });
    web = await countingListener(up.path, { reply: (head) => httpReply(`origin saw ${head.split(" ")[1]}\n`) });
    silent = await countingListener(up.path);
    const UP = addrs.b4;
    dns = await startDnsServer(outer.prefix, DNS_HOST, {
      // Changes between two lookups: allowed, then refused (loopback, or the host's own address).
      "flip.test": [[UP], ["127.0.0.1"]],
      "flop.test": [[addrs.a4], [UP]],
      // One answer holding a refused address before an allowed one.
      "mixed.test": [["127.0.0.1", addrs.a4, UP]],
    });
    etc = withEtcFiles(dir, "etc", {
      hosts: hostsFile({ "up.test": UP, "other.test": UP, "host.test": addrs.a4, "host6.test": addrs.a6 }),
      resolvConf: resolvConf(DNS_HOST),
    });
    writeFileSync(dir.path("client.py"), PY_CLIENT, { mode: 0o644 });
    writeFileSync(dir.path("client.js"), NODE_CLIENT, { mode: 0o644 });
    writeFileSync(dir.path("client.sh"), CURL_CLIENT, { mode: 0o644 });
    for (const p of [PYTHON, NODE, CURL]) exe[p] = realExe(p);
  });

  afterAll(async () => {
    await dns?.close();
    hostListener?.close();
    web?.close();
    silent?.close();
    up?.remove();
    outer?.remove();
    dir?.remove();
  });

  /** `proxywall run ARGS --user 65534 -- sh -c SCRIPT` where proxywall runs: outer, with the test's /etc files. */
  async function runIn(args: string[], script: string): Promise<Run> {
    const r = await proxywall(["run", ...TEST_ARGS, ...args, "--user", "65534", "--", "sh", "-c", `cd /tmp; unset NO_PROXY no_proxy; ${script}`], {
      prefix: [...outer.prefix, ...etc],
      timeoutMs: 120_000,
    });
    for (const e of r.events) v.parse(EventLine, e);
    return r;
  }

  /** Every client, GET and CONNECT, once per authority. */
  const allClients = (auths: string[]) => {
    const list = auths.map((a) => `'${a}'`).join(" ");
    return ["GET", "CONNECT"]
      .flatMap((m) => [`sh ${dir.path("client.sh")} ${m} ${list}`, `${PYTHON} ${dir.path("client.py")} ${m} ${list}`, `${NODE} ${dir.path("client.js")} ${m} ${list}`])
      .join("; ");
  };

  const clientExe = (client: string) => exe[{ curl: CURL, python: PYTHON, node: NODE }[client]!]!;

  const category = (reason: string) => /^guard: (loopback|unspecified|an address of this host)/.exec(reason)?.[1] ?? reason;

  test("loopback, localhost and this host's own addresses, in every spelling: 403, a denied line with the process, nothing reaches them", async () => {
    const P = hostListener.port;
    const h4 = addrs.a4; // 10.209.40.1, an address of outer (where proxywall runs)
    const [a, b, c, d] = h4.split(".").map(Number) as [number, number, number, number];
    const n = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
    const spellings: Record<string, string[]> = {
      loopback: ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "017700000001", "127.0.0.1.", "127.8.9.10", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]", "localhost", "LOCALHOST", "localhost.", "api.localhost"],
      unspecified: ["0.0.0.0", "0", "[::]"],
      "an address of this host": [
        h4,
        String(n),
        `0x${n.toString(16)}`,
        `0${n.toString(8)}`,
        `${a}.${b}.${(c << 8) + d}`,
        `${a}.${(b << 16) + (c << 8) + d}`,
        h4.split(".").map((x) => `0${Number(x).toString(8)}`).join("."),
        h4.split(".").map((x) => `0x${Number(x).toString(16)}`).join("."),
        `${h4}.`,
        `[::ffff:${h4}]`,
        `[::ffff:${((a << 8) + b).toString(16)}:${((c << 8) + d).toString(16)}]`,
        "host.test",
        `[${addrs.a6}]`,
        `[${addrs.a6.toUpperCase().replace("::", ":0:0:0:0:")}]`,
        "host6.test",
      ],
    };
    const rowOf = new Map<string, string>(Object.entries(spellings).flatMap(([row, hosts]) => hosts.map((h) => [`${h}:${P}`, row] as const)));
    const auths = [...rowOf.keys()];
    // The private ranges are allowed by CIDR (and the upstream's port with them), so that only the
    // "this host" row stands between a request and outer's own addresses.
    const allow = ["--allow", `10.209.40.0/30:${P},${web.port}`, "--allow", `[fd70:7099:40::/64]:${P}`];
    const hostBefore = hostListener.connections;
    const webBefore = web.connections;
    const control = `; sh ${dir.path("client.sh")} GET ${addrs.b4}:${web.port}`;
    const r = await runIn(allow, allClients(auths) + control);
    expect({ code: r.code, text: r.text }).toEqual({ code: 0, text: r.text.filter((l) => l.startsWith("proxywall:")) });
    const got = replies(r.stdout);
    expect(got).toHaveLength(auths.length * 6 + 1);
    // The control: the same run serves the upstream its allow rule names.
    expect(got.pop()).toEqual({ client: "curl", method: "GET", auth: `${addrs.b4}:${web.port}`, status: "200", denied: "-", body: "origin saw /curl" });
    expect(web.connections - webBefore).toBe(1);
    for (const g of got) {
      // urllib hides the head of a refused CONNECT, so its X-Proxywall-Denied cannot be read.
      // (Python 3.11's urllib writes an IPv6 CONNECT host without brackets, CONNECT ::1:PORT:
      // read as the address and port it can only mean, and refused by the guard like the rest.)
      const headerHidden = g.client === "python" && g.method === "CONNECT";
      expect(g).toEqual({ ...g, status: "403", denied: headerHidden ? "-" : expect.stringMatching(/^guard: /), body: expect.not.stringContaining("served") });
    }
    const connects = eventsOf(r.events, "proxy_connect");
    expect(connects).toHaveLength(got.length + 1);
    for (const client of ["curl", "python", "node"]) {
      const mine = connects.filter((e) => e.process?.exe === clientExe(client));
      const expected: string[] = got.filter((g) => g.client === client).map((g) => `403 denied ${rowOf.get(g.auth)}`);
      if (client === "curl") expected.push("200 ok 10.209.40.0/30");
      const seen = mine.map((e) => `${e.status} ${e.outcome} ${e.outcome === "denied" ? category(e.reason) : e.outcome === "ok" ? e.rule.split(":")[0] : ""}`.trim());
      expect(seen.sort()).toEqual(expected.sort());
      for (const e of mine) expect(e.process).toMatchObject({ resolved: true, uid: 65534, exe: clientExe(client), pid: expect.any(Number) });
    }
    expect(connects.filter((e) => e.outcome === "bad_request")).toEqual([]);
    expect(hostListener.connections - hostBefore).toBe(0);
    // And a request that did reach the listener would have been counted (spawned, not spawnSync:
    // the listener lives on this process's event loop).
    for (const url of [`http://127.0.0.1:${P}/`, `http://[${addrs.a6}]:${P}/`]) {
      const direct = Bun.spawn([...outer.prefix, CURL, "-sS", "-g", "-m", "5", url], { stdout: "pipe", stderr: "pipe" });
      expect(await new Response(direct.stdout).text()).toBe("the host itself served this\n");
      expect(await direct.exited).toBe(0);
    }
    expect(hostListener.connections - hostBefore).toBe(2);
  });

  test("an upstream on a private address: refused by default; served with --allow of its address or CIDR, by address or by name; a name rule alone does not lift the private row", async () => {
    const W = web.port;
    const targets = [`${addrs.b4}:${W}`, `up.test:${W}`];
    const curl = (m: string) => `sh ${dir.path("client.sh")} ${m} ${targets.join(" ")}`;
    const py = `${PYTHON} ${dir.path("client.py")} GET ${targets.join(" ")}`;
    const node = (m: string) => `${NODE} ${dir.path("client.js")} ${m} ${targets.join(" ")}`;
    const before = web.connections;

    const none = await runIn([], allClients(targets));
    expect(none.code).toBe(0);
    const refused = replies(none.stdout);
    expect(refused).toHaveLength(12);
    for (const g of refused) expect(g).toMatchObject({ status: "403", body: expect.not.stringContaining("origin saw") });
    const noneLines = eventsOf(none.events, "proxy_connect");
    expect(noneLines).toHaveLength(12);
    for (const e of noneLines) {
      expect(e).toMatchObject({ outcome: "denied", status: 403, rule: null, reason: "guard: private 10.0.0.0/8, unless a rule allows it by address or CIDR" });
      expect(e.process).toMatchObject({ resolved: true, uid: 65534 });
    }
    // README: "a name rule is not enough" for a private address.
    const byName = await runIn(["--allow", `up.test:${W}`], `${curl("GET")}; ${py}; ${node("CONNECT")}`);
    expect(replies(byName.stdout).map((g) => g.status)).toEqual(Array(6).fill("403"));
    // For the name too: its address falls in the private row, which only an address rule lifts.
    expect(eventsOf(byName.events, "proxy_connect").map((e) => e.reason)).toEqual(Array(6).fill("guard: private 10.0.0.0/8, unless a rule allows it by address or CIDR"));
    expect(web.connections - before).toBe(0);

    for (const rule of [`10.209.40.0/30:${W}`, `${addrs.b4}:${W}`]) {
      const served = await runIn(["--allow", rule], `${curl("GET")}; ${curl("CONNECT")}; ${py}; ${node("GET")}; ${node("CONNECT")}`);
      expect(served.code).toBe(0);
      const got = replies(served.stdout);
      expect(got.map((g) => `${g.client} ${g.method} ${g.status} ${g.body}`.trim())).toEqual(
        ["curl GET", "curl CONNECT", "python GET", "node GET", "node CONNECT"].flatMap((c) => {
          const [client, method] = c.split(" ");
          const body = method === "CONNECT" && client === "node" ? "" : `origin saw /${client}`;
          return [`${c} 200 ${body}`.trim(), `${c} 200 ${body}`.trim()];
        }),
      );
      const lines = eventsOf(served.events, "proxy_connect");
      expect(lines).toHaveLength(10);
      for (const e of lines) {
        expect(e).toMatchObject({ outcome: "ok", dst_addr: addrs.b4, dst_port: W, rule });
        expect(e.process).toMatchObject({ resolved: true, uid: 65534 });
      }
      expect(lines.map((e) => e.dst_host)).toEqual(Array(5).fill([addrs.b4, "up.test"]).flat());
    }
    expect(web.connections - before).toBe(20);
  });

  test("a --policy file with an exe entry: curl reaches the upstream, python3 and node asking for the same are refused", async () => {
    const W = web.port;
    const file = dir.path("exe-policy.yaml");
    writeFileSync(file, `allow:\n  - host: ${addrs.b4}\n    ports: [${W}]\n    exe: [/usr/bin/curl]\n    comment: only curl\n`, { mode: 0o644 });
    const target = `${addrs.b4}:${W}`;
    const before = web.connections;
    const r = await runIn(["--policy", file], `sh ${dir.path("client.sh")} GET ${target}; ${PYTHON} ${dir.path("client.py")} GET ${target}; ${NODE} ${dir.path("client.js")} GET ${target}`);
    expect(r.code).toBe(0);
    expect(replies(r.stdout).map((g) => [g.client, g.status, g.body.startsWith("origin saw") ? "served" : "not served"])).toEqual([
      ["curl", "200", "served"],
      ["python", "403", "not served"],
      ["node", "403", "not served"],
    ]);
    expect(web.connections - before).toBe(1);
    const lines = eventsOf(r.events, "proxy_connect");
    expect(lines.map((e) => [e.process?.exe, e.outcome, e.rule])).toEqual([
      [exe[CURL], "ok", `${addrs.b4}:${W} exe=/usr/bin/curl`],
      [exe[PYTHON], "denied", null],
      [exe[NODE], "denied", null],
    ]);
    expect(lines[0]!.reason).toBeNull();
    // For anyone else the entry does not exist: the private row refuses them.
    expect(lines[1]!.reason).toBe("guard: private 10.0.0.0/8, unless a rule allows it by address or CIDR");
  });

  test("a resolver answer that changes between lookups never reaches a refused address: one lookup per request, and the proxy connects only to what it checked", async () => {
    const W = web.port;
    const N = 4; // lookups of each name per client: bounded
    const names = (name: string) => Array(N).fill(`${name}:${W}`).join(" ");
    const script = ["flip.test", "flop.test", "mixed.test"]
      .map((name) => `sh ${dir.path("client.sh")} GET ${names(name)}; ${PYTHON} ${dir.path("client.py")} GET ${names(name)}; ${NODE} ${dir.path("client.js")} CONNECT ${names(name)}`)
      .join("; ");
    const hostBefore = hostListener.connections;
    const webBefore = web.connections;
    const queriesBefore = dns.queries.length;
    const r = await runIn(["--allow", `${addrs.b4}:${W}`], script);
    expect(r.code).toBe(0);
    const got = replies(r.stdout);
    expect(got).toHaveLength(9 * N);
    // The clients run one after another, so the k-th request for a name got the k-th answer:
    // flip.test answers allowed, refused, allowed, ...; flop.test refused, allowed, ...
    const status = (name: string) => got.filter((g) => g.auth.startsWith(name)).map((g) => g.status);
    const alternate = (first: string, second: string) => Array.from({ length: 3 * N }, (_, k) => (k % 2 === 0 ? first : second));
    expect(status("flip.test")).toEqual(alternate("200", "403"));
    expect(status("flop.test")).toEqual(alternate("403", "200"));
    expect(status("mixed.test")).toEqual(Array(3 * N).fill("200"));
    // Exactly one lookup (A and AAAA) per request: no second lookup that could be answered differently.
    const asked = dns.queries.slice(queriesBefore);
    for (const name of ["flip.test", "flop.test", "mixed.test"]) {
      expect(asked.filter((q) => q.name === name && q.type === 1)).toHaveLength(3 * N);
    }
    expect(hostListener.connections - hostBefore).toBe(0);
    expect(web.connections - webBefore).toBe(got.filter((g) => g.status === "200").length);
    const lines = eventsOf(r.events, "proxy_connect");
    const byName = (name: string) => lines.filter((e) => e.dst_host === name);
    for (const [name, refusedReason] of [
      ["flip.test", "guard: loopback 127.0.0.0/8"],
      ["flop.test", `guard: an address of this host ${addrs.a4}`],
    ] as const) {
      const mine = byName(name);
      expect(mine).toHaveLength(3 * N);
      for (const e of mine) {
        if (e.outcome === "ok") expect(e).toMatchObject({ dst_addr: addrs.b4, rule: `${addrs.b4}:${W}` });
        else expect(e).toMatchObject({ outcome: "denied", status: 403, dst_addr: null, reason: refusedReason });
      }
      expect(mine.filter((e) => e.outcome === "denied")).toHaveLength((3 * N) / 2);
    }
    // One answer with loopback and this host's address before the allowed one: those are skipped.
    for (const e of byName("mixed.test")) expect(e).toMatchObject({ outcome: "ok", dst_addr: addrs.b4 });
  });

  test("a TLS ClientHello for another server than the CONNECT host is cut before any byte reaches the upstream", async () => {
    const S = silent.port;
    // openssl talks to the proxy itself (-proxy); the CONNECT host is up.test (or the address).
    const hello = (connect: string, sni: string) => `timeout 3 openssl s_client -proxy 127.0.0.1:3128 -connect ${connect}:${S} -servername ${sni} </dev/null >/dev/null 2>&1; echo "openssl ${connect} ${sni} $?"`;
    const allow = ["--allow", `${addrs.b4}:${S}`, "--deny", "blocked.test:*"];
    const before = silent.bytes;
    const cut = await runIn(allow, `${hello("up.test", "other.test")}; ${hello(addrs.b4, "blocked.test")}`);
    expect(cut.code).toBe(0);
    expect(silent.bytes - before).toBe(0);
    const lines = eventsOf(cut.events, "proxy_connect");
    expect(lines.map((e) => [e.method, e.dst_host, e.outcome, e.bytes_up, e.rule, e.reason])).toEqual([
      ["CONNECT", "up.test", "denied", 0, "guard: TLS server name", "the TLS server name other.test differs from the CONNECT host up.test"],
      ["CONNECT", addrs.b4, "denied", 0, "blocked.test:*", "the TLS server name blocked.test: deny blocked.test:*"],
    ]);
    for (const e of lines) expect(e.process).toMatchObject({ resolved: true, exe: realExe("/usr/bin/openssl"), uid: 65534 });
    // The control: the same hello for the CONNECT host itself goes up (the listener never answers,
    // so openssl waits until `timeout` ends it).
    const through = await runIn(allow, hello("up.test", "up.test"));
    expect(through.code).toBe(0);
    expect(silent.bytes - before).toBeGreaterThan(0);
    expect(eventsOf(through.events, "proxy_connect").map((e) => [e.outcome, e.bytes_up > 0])).toEqual([["ok", true]]);
  });

  // A raw CONNECT client in python: opens a tunnel to `target`, prints the proxy's status line, then
  // waits (at most 20 s) for the tunnel to end and prints "eof" or "still open".
  const tunnel = (target: string, then = "") => `${PYTHON} -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n")
print(s.recv(4096).split(b"\\r\\n")[0].decode(), flush=True)
${then}
s.settimeout(20)
try: print("eof" if s.recv(1) == b"" else "data")
except socket.timeout: print("still open")
'`;

  test("--idle-timeout: a tunnel with no byte either way ends, outcome idle_timeout", async () => {
    const target = `${addrs.b4}:${silent.port}`;
    const r = await runIn(["--allow", target, "--idle-timeout", "1"], tunnel(target));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("HTTP/1.1 200 Connection established\neof\n");
    expect(eventsOf(r.events, "proxy_connect").map((e) => [e.method, e.status, e.outcome, e.error])).toEqual([["CONNECT", 200, "idle_timeout", "no byte either way for 1 s"]]);
  });

  test("--max-clients: the connection over the limit gets 503, outcome limit", async () => {
    const target = `${addrs.b4}:${silent.port}`;
    // While the first tunnel is open, curl asks for the upstream: the second client of one allowed.
    const second = `import subprocess; subprocess.run(["sh", "${dir.path("client.sh")}", "GET", "${addrs.b4}:${web.port}"]); s.close(); sys.exit(0)`;
    const r = await runIn(["--allow", target, "--allow", `${addrs.b4}:${web.port}`, "--max-clients", "1"], tunnel(target, second));
    expect(r.code).toBe(0);
    const [status, ...rest] = r.stdout.trim().split("\n");
    expect(status).toBe("HTTP/1.1 200 Connection established");
    expect(replies(rest.join("\n")).map((g) => [g.client, g.status])).toEqual([["curl", "503"]]);
    const lines = eventsOf(r.events, "proxy_connect");
    expect(lines.map((e) => [e.method, e.status, e.outcome])).toEqual([
      ["GET", 503, "limit"],
      ["CONNECT", 200, "ok"],
    ]);
    expect(lines[0]!.error).toContain("(the limit)");
    expect(lines[0]!.process).toMatchObject({ resolved: true, exe: exe[CURL] });
  });

  test("refused before the policy is asked, a line still names the process: a bad request (400), a client that closes before its request", async () => {
    const script = `${PYTHON} -c '
import socket
def ask(data, close_first=False):
    s = socket.create_connection(("127.0.0.1", 3128))
    if data: s.sendall(data)
    if close_first: s.shutdown(socket.SHUT_WR)
    print(s.recv(4096).split(b"\\r\\n")[0].decode() or "eof", flush=True)
    s.close()
ask(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
ask(b"", close_first=True)
'`;
    const r = await runIn([], script);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("HTTP/1.1 400 Bad Request\neof\n");
    const lines = eventsOf(r.events, "proxy_connect");
    expect(lines.map((e) => [e.status, e.outcome, e.process?.resolved ? e.process.exe : null])).toEqual([
      [400, "bad_request", exe[PYTHON]],
      [0, "client_error", exe[PYTHON]],
    ]);
  });

  test("a name that does not resolve: 502, outcome resolve_failed (asked of the test's own DNS server)", async () => {
    const r = await runIn([], `sh ${dir.path("client.sh")} GET nothing.test:80; ${NODE} ${dir.path("client.js")} CONNECT nothing.test:443`);
    expect(r.code).toBe(0);
    expect(replies(r.stdout).map((g) => [g.client, g.status])).toEqual([
      ["curl", "502"],
      ["node", "502"],
    ]);
    expect(eventsOf(r.events, "proxy_connect").map((e) => [e.dst_host, e.status, e.outcome, e.error])).toEqual([
      ["nothing.test", 502, "resolve_failed", "nothing.test does not resolve (ENOTFOUND)"],
      ["nothing.test", 502, "resolve_failed", "nothing.test does not resolve (ENOTFOUND)"],
    ]);
    expect(dns.queries.some((q) => q.name === "nothing.test")).toBe(true);
  });

  test("--policy-mode audit: what enforce would deny is served and marked would_deny; the guard still refuses", async () => {
    const W = web.port;
    const before = web.connections;
    const hostBefore = hostListener.connections;
    const args = ["--policy-mode", "audit", "--allow", `${addrs.b4}:${W}`, "--deny", "up.test:*"];
    const r = await runIn(args, `sh ${dir.path("client.sh")} GET up.test:${W} other.test:${W} 127.0.0.1:${hostListener.port} host.test:${hostListener.port}`);
    expect(r.code).toBe(0);
    expect(replies(r.stdout).map((g) => [g.auth.split(":")[0], g.status, g.body])).toEqual([
      ["up.test", "200", "origin saw /curl"],
      ["other.test", "200", "origin saw /curl"],
      ["127.0.0.1", "403", expect.not.stringContaining("served")],
      ["host.test", "403", expect.not.stringContaining("served")],
    ]);
    expect(web.connections - before).toBe(2);
    expect(hostListener.connections - hostBefore).toBe(0);
    expect(eventsOf(r.events, "proxy_connect").map((e) => [e.dst_host, e.outcome, e.rule])).toEqual([
      ["up.test", "would_deny", "up.test:*"],
      ["other.test", "ok", `${addrs.b4}:${W}`],
      ["127.0.0.1", "denied", null],
      ["host.test", "denied", null],
    ]);
  });

  test("outside addresses (metadata, documentation ranges) are asked of the decision function and `policy check`, never requested", async () => {
    const p = loadPolicy({ allow: ["0.0.0.0/0:*"], deny: [], files: [], mode: "enforce" }, { hostAddresses: () => [] }) as Policy;
    const decide = (host: string) => {
      const t = decideTarget(p, host, 80, null);
      if (t.kind === "address") return t.verdict;
      return t.verdict === "resolve" ? decideResolved(p, t.name, [], 80, null).verdict : t.verdict;
    };
    for (const host of ["169.254.169.254", "2852039166", "0xa9.0xfe.0xa9.0xfe", "[::ffff:169.254.169.254]", "[fd00:ec2::254]", "100.100.100.200", "metadata.google.internal", "metadata"]) {
      expect({ host, ...decide(host) }).toMatchObject({ host, allowed: false, reason: expect.stringMatching(/^guard: cloud metadata/) });
    }
    for (const host of ["198.51.100.7", "203.0.113.9", "[2001:db8::1]", "0xcb.0.113.9"]) {
      expect({ host, ...decide(host) }).toMatchObject({ host, allowed: false, reason: expect.stringMatching(/^guard: documentation/) });
    }
    const meta = await runCli(["policy", "check", "0xa9fea9fe:80", "--allow", "0.0.0.0/0:*"]);
    expect(meta).toMatchObject({ code: 1, stdout: "denied 169.254.169.254:80\n  decided by: guard: cloud metadata 169.254.169.254\n" });
    const doc = await runCli(["policy", "check", "[2001:db8::7]:443"]);
    expect(doc.code).toBe(1);
    expect(doc.stdout).toContain("guard: documentation 2001:db8::/32");
  });
});
