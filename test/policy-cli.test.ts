// `proxywall policy check` and `proxywall policy learn` as a user runs them (subprocesses, no root),
// and the learner itself. No traffic: names are `localhost`, numeric hosts, or `.invalid` names
// that do not resolve; a resolved name's addresses are given to `check` by a stand-in resolver.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { check } from "../src/cli/policy.ts";
import { decideResolved, decideTarget, loadPolicy, type Policy } from "../src/policy/index.ts";
import { Learner } from "../src/policy/learn.ts";
import { tempDir } from "./support/temp.ts";
import { runCli as proxywall } from "./support/cli.ts";



const dir = tempDir("policy-cli-");
afterAll(() => dir.remove());

describe("proxywall policy check", () => {
  test("a guard row: exit 1, the row named", async () => {
    const r = await proxywall(["policy", "check", "0x7f.1:8080"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("denied 127.0.0.1:8080\n  decided by: guard: loopback 127.0.0.0/8\n");
    const m = await proxywall(["policy", "check", "[::ffff:169.254.169.254]:80", "--allow", "0.0.0.0/0:*"]);
    expect(m.code).toBe(1);
    expect(m.stdout).toContain("guard: cloud metadata 169.254.169.254 (::ffff:169.254.169.254 is the IPv4-mapped form of 169.254.169.254)");
    const n = await proxywall(["policy", "check", "metadata.google.internal:80"]);
    expect(n.code).toBe(1);
    expect(n.stdout).toContain("guard: cloud metadata name metadata.google.internal");
    const l = await proxywall(["policy", "check", "localhost"]);
    expect(l.code).toBe(1);
    expect(l.stdout).toContain("guard: loopback name localhost");
  });

  test("allowed: exit 0, the rule named; the port defaults to 443", async () => {
    const r = await proxywall(["policy", "check", "203.0.113.9", "--allow", "203.0.113.0/24:443", "--allow=example.invalid"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("allowed 203.0.113.9:443\n  decided by: allow 203.0.113.0/24:443\n");
    expect((await proxywall(["policy", "check", "203.0.113.9:80", "--allow", "203.0.113.0/24:443"])).code).toBe(1);
  });

  test("a name that does not resolve is decided by the rules alone, and says so", async () => {
    const r = await proxywall(["policy", "check", "api.example.invalid", "--allow", "*.example.invalid", "--allow", "192.0.2.0/24"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^allowed api\.example\.invalid:443\n {2}decided by: allow \*\.example\.invalid\n {2}api\.example\.invalid does not resolve now \(\w+\): decided by the rules alone\n$/);
    const d = await proxywall(["policy", "check", "other.invalid:80", "--allow", "*.example.invalid", "--allow", "192.0.2.0/24"]);
    expect(d.code).toBe(1);
    expect(d.stdout).toContain("decided by: default: no allow rule matched");
    expect(d.stdout).toContain("decided by the rules alone");
    // With no address rule a name no rule allows is denied before any lookup.
    const early = await proxywall(["policy", "check", "other.invalid", "--allow", "a.example.invalid"]);
    expect(early.stdout).toContain("decided by the name alone, before any lookup");
  });

  test("deny over allow, --exe, a policy file, --json, audit mode", async () => {
    const file = dir.path("check.yaml");
    writeFileSync(file, "allow:\n  - host: '*.example.invalid'\n    exe: /usr/bin/git\ndeny:\n  - bad.example.invalid\n");
    const byGit = await proxywall(["policy", "check", "a.example.invalid", "--policy", file, "--exe", "/usr/bin/git"]);
    expect(byGit.code).toBe(0);
    expect(byGit.stdout).toContain(`allow *.example.invalid exe=/usr/bin/git (${file} allow[0])`);
    expect((await proxywall(["policy", "check", "a.example.invalid", "--policy", file, "--exe", "/usr/bin/curl"])).code).toBe(1);
    const bad = await proxywall(["policy", "check", "bad.example.invalid", "--policy", file, "--exe", "/usr/bin/git", "--json"]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({
      host: "bad.example.invalid",
      port: 443,
      exe: "/usr/bin/git",
      resolved: null,
      addresses: [],
      note: "decided by the name alone, before any lookup",
      allowed: false,
      outcome: "denied",
      rule: "bad.example.invalid",
      reason: `deny bad.example.invalid (${file} deny[0])`,
    });
    const audit = await proxywall(["policy", "check", "bad.example.invalid", "--policy", file, "--policy-mode", "audit"]);
    expect(audit.code).toBe(0);
    expect(audit.stdout).toContain("allowed (audit: enforce would deny) bad.example.invalid:443");
    const guard = await proxywall(["policy", "check", "127.1", "--policy-mode", "audit"]);
    expect(guard.code).toBe(1);
  });

  test("usage errors exit 2 with one line", async () => {
    const cases: [string[], string][] = [
      [["policy", "check"], "policy check needs HOST[:PORT]"],
      [["policy", "check", "a", "b"], "policy check takes one HOST[:PORT], got 2"],
      [["policy", "check", "08.0.0.1"], "08.0.0.1: 08.0.0.1 is not a valid IPv4 address"],
      [["policy", "check", "a.invalid:0"], "the port must be 1 to 65535"],
      [["policy", "check", "a.invalid", "--allow", "*.co.uk"], '--allow "*.co.uk": *.co.uk is a wildcard over the public suffix co.uk'],
      [["policy", "check", "a.invalid", "--deny", "x:99999"], "a port is 1 to 65535"],
      [["policy", "check", "a.invalid", "--policy", dir.path("nope.yaml")], `${dir.path("nope.yaml")}: cannot read: no such file`],
      [["policy", "check", "a.invalid", "--policy-mode", "loud"], "--policy-mode: must be enforce or audit"],
      [["policy", "check", "a.invalid", "--bogus"], "unknown option --bogus"],
      [["policy", "frob"], "unknown policy action frob"],
      [["policy"], "policy needs check or learn"],
      [["policy", "learn", "--allow", "x"], "policy learn takes no --allow"],
      [["policy", "learn", dir.path("none.jsonl")], "no such file"],
    ];
    for (const [args, message] of cases) {
      const r = await proxywall(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("check with a resolver (in process)", () => {
  const p = loadPolicy({ allow: ["*.example.com", "203.0.113.0/24"], deny: [], files: [], mode: "enforce" }, { hostAddresses: () => [] }) as Policy;
  test("a name is decided by the rules, and the guard by every address it resolves to", async () => {
    const r = await check(p, "api.example.com", null, async () => ({ addrs: ["127.0.0.1", "198.51.100.4", "203.0.113.5", "2606:2800:220:1::1"] }));
    // The first allowed address decides: 203.0.113.5, which the address rule lets past the guard.
    expect(r.verdict).toMatchObject({ allowed: true, reason: "allow 203.0.113.0/24" });
    expect(r.resolved).toBe(true);
    expect(r.addresses.map((a) => [a.addr, a.verdict.allowed, a.verdict.reason])).toEqual([
      ["127.0.0.1", false, "guard: loopback 127.0.0.0/8"],
      ["198.51.100.4", false, "guard: documentation 198.51.100.0/24, unless a rule allows it by address or CIDR"],
      ["203.0.113.5", true, "allow 203.0.113.0/24"],
      ["2606:2800:220:1::1", true, "allow *.example.com"],
    ]);
    expect(r.note).toBe("the proxy would connect to 203.0.113.5 or 2606:2800:220:1::1");
    const none = await check(p, "api.example.com:443", null, async () => ({ addrs: ["10.0.0.1"] }));
    expect(none.verdict.allowed).toBe(false);
    const failed = await check(p, "api.example.com", null, async () => ({ error: "ENOTFOUND" }));
    expect(failed).toMatchObject({ resolved: false, verdict: { allowed: true }, note: "api.example.com does not resolve now (ENOTFOUND): decided by the rules alone" });
  });
});

// ---- learn -------------------------------------------------------------------------------------

function connect(host: string, port: number, ts: string, exe: string | null = null): string {
  return JSON.stringify({
    v: 1,
    event: "proxy_connect",
    ts,
    sandbox: "abcd1234",
    method: "CONNECT",
    client_addr: "10.200.0.2",
    client_port: 40000,
    dst_host: host,
    dst_port: port,
    status: 200,
    bytes_up: 1,
    bytes_down: 1,
    duration_ms: 1,
    outcome: "ok",
    error: null,
    process: exe === null ? { resolved: false, why: "gone" } : { resolved: true, pid: 9, exe, cmdline: [], uid: 0, start_time: null, ancestors: [], also_held_by: [] },
  });
}
function dns(name: string, ts: string): string {
  return JSON.stringify({ v: 1, event: "bypass_detect", ts, sandbox: "abcd1234", proto: "udp", dst_addr: "10.200.0.1", dst_port: 53, dns_query: name });
}

const EVENTS = [
  connect("registry.npmjs.org", 443, "2026-11-29T14:00:00.000Z"),
  connect("registry.npmjs.org", 443, "2026-11-29T14:05:00.000Z", "/usr/bin/node"),
  connect("api.github.com", 443, "2026-11-29T14:01:00.000Z"),
  connect("codeload.github.com", 443, "2026-11-29T14:02:00.000Z"),
  connect("objects.githubusercontent.com", 443, "2026-11-29T14:03:00.000Z"),
  connect("GitHub.com.", 443, "2026-11-29T14:03:30.000Z"),
  connect("example.org", 80, "2026-11-29T14:04:00.000Z"),
  connect("example.org", 443, "2026-11-29T14:04:01.000Z"),
  connect("example.org", 8080, "2026-11-29T14:04:02.000Z"),
  connect("203.0.113.7", 8443, "2026-11-29T14:06:00.000Z"),
  connect("10.20.0.5", 5432, "2026-11-29T14:06:30.000Z"),
  connect("2001:db8::7", 443, "2026-11-29T14:07:00.000Z"),
  connect("127.0.0.1", 8080, "2026-11-29T14:08:00.000Z"),
  connect("alpha.user.github.io", 443, "2026-11-29T14:09:00.000Z"),
  connect("beta.user2.github.io", 443, "2026-11-29T14:09:01.000Z"),
  dns("telemetry.example.net", "2026-11-29T14:10:00.000Z"),
  dns("metadata.google.internal", "2026-11-29T14:10:01.000Z"),
  JSON.stringify({ v: 1, event: "sandbox_ready", ts: "2026-11-29T13:59:59.000Z", sandbox: "abcd1234" }),
  "not json at all",
  "",
];

describe("proxywall policy learn", () => {
  test("the smallest policy that allows what was seen, with counts and first/last seen", () => {
    const l = new Learner();
    for (const line of EVENTS) l.line(line);
    const out = l.render("test");
    expect(out).toContain("15 proxy_connect lines, 2 DNS names from bypass_detect lines, 2 other lines skipped");
    const rules = out.split("\n").filter((x) => x.startsWith("  - ")).map((x) => JSON.parse(x.slice(4)));
    expect(rules).toEqual([
      "*.github.com:443", // two subdomains of one site
      "github.com:443", // the apex is not in *.github.com
      "objects.githubusercontent.com:443",
      "alpha.user.github.io:443", // github.io is a public suffix: each site on its own
      "beta.user2.github.io:443",
      "telemetry.example.net", // a DNS query only: the default ports
      "example.org:80,443,8080",
      "registry.npmjs.org:443",
      "10.20.0.5:5432",
      "[2001:db8::7]:443",
      "203.0.113.7:8443",
    ]);
    expect(out).toContain("  # 2 connections, first 2026-11-29T14:01:00.000Z, last 2026-11-29T14:02:00.000Z: api.github.com, codeload.github.com\n");
    expect(out).toContain("  # 2 connections, first 2026-11-29T14:00:00.000Z, last 2026-11-29T14:05:00.000Z, by /usr/bin/node\n");
    expect(out).toContain("  # 1 DNS query (ports not seen: 80 and 443), seen 2026-11-29T14:10:00.000Z\n");
    expect(out).toContain("#   127.0.0.1:8080: loopback, 1 time");
    expect(out).toContain("#   metadata.google.internal: cloud metadata name, 1 time");
  });

  test("its output loads with --policy and allows everything it learned", async () => {
    const events = dir.path("events.jsonl");
    writeFileSync(events, `${EVENTS.join("\n")}\n`);
    const r = await proxywall(["policy", "learn", events]);
    expect(r.code).toBe(0);
    const file = dir.path("learned.yaml");
    writeFileSync(file, r.stdout);
    const p = loadPolicy({ allow: [], deny: [], files: [file], mode: "enforce" }, { hostAddresses: () => [] });
    if (typeof p === "string") throw new Error(p);
    const pub = ["93.184.216.34"];
    const allowed = (host: string, port: number) => {
      const t = decideTarget(p, host, port, null);
      if (t.kind === "address") return t.verdict.allowed;
      return t.verdict === "resolve" ? decideResolved(p, t.name, pub, port, null).verdict.allowed : t.verdict.allowed;
    };
    for (const [host, port] of [
      ["registry.npmjs.org", 443],
      ["api.github.com", 443],
      ["codeload.github.com", 443],
      ["github.com", 443],
      ["objects.githubusercontent.com", 443],
      ["example.org", 8080],
      ["203.0.113.7", 8443],
      ["10.20.0.5", 5432],
      ["2001:db8::7", 443],
      ["telemetry.example.net", 443],
      ["alpha.user.github.io", 443],
    ] as const) {
      expect({ host, port, ok: allowed(host, port) }).toEqual({ host, port, ok: true });
    }
    // ... and not much else.
    expect(allowed("registry.npmjs.org", 80)).toBe(false);
    expect(allowed("evil.example", 443)).toBe(false);
    expect(allowed("gamma.user3.github.io", 443)).toBe(false);
    expect(allowed("203.0.113.8", 8443)).toBe(false);
    // The same from standard input.
    const s = await proxywall(["policy", "learn"], `${EVENTS.join("\n")}\n`);
    expect(s.code).toBe(0);
    expect(s.stdout.replace(/from .*:/, "")).toBe(r.stdout.replace(/from .*:/, ""));
  });

  test("nothing to learn: an empty allow list and a note", async () => {
    const r = await proxywall(["policy", "learn", "-"], "hello\n");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("allow: []");
    expect(r.stderr).toContain("no proxy_connect lines");
  });
});

