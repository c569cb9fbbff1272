// The policy decision as pure functions, without root and without traffic: every guard row in every
// spelling, wildcard and port edges, deny over allow, exe rules, public-suffix wildcards, policy
// file errors, and the two calls the proxy makes (before and after resolving).
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { decideResolved, decideTarget, loadPolicy, normaliseHost, type Policy, type PolicyOptions, type Verdict } from "../src/policy/index.ts";
import { parsePorts, parseRule } from "../src/policy/rules.ts";
import { tempDir } from "./support/temp.ts";

const HOST_ADDRS = ["10.200.0.1", "fd70:7077:ac8:4::1", "203.0.113.200"];
const CTX = { hostAddresses: () => HOST_ADDRS, doorPort: 3128 };

function policy(o: Partial<PolicyOptions> = {}, ctx: Parameters<typeof loadPolicy>[1] = CTX): Policy {
  const p = loadPolicy({ allow: [], deny: [], files: [], mode: "enforce", ...o }, ctx);
  if (typeof p === "string") throw new Error(p);
  return p;
}

function loadError(o: Partial<PolicyOptions>): string {
  const p = loadPolicy({ allow: [], deny: [], files: [], mode: "enforce", ...o }, CTX);
  if (typeof p !== "string") throw new Error("expected a load error");
  return p;
}

/** The verdict for a literal address or a name that is taken to resolve to `addrs`. */
function decide(p: Policy, host: string, port = 443, exe: string | null = null, addrs?: string[]): Verdict {
  const t = decideTarget(p, host, port, exe);
  if (t.kind === "address") return t.verdict;
  if (t.verdict !== "resolve") return t.verdict;
  if (!addrs) throw new Error(`${host} needs addresses`);
  return decideResolved(p, t.name, addrs, port, exe).verdict;
}

const NONE = policy();

describe("normaliseHost", () => {
  const addrs: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["0X7F.1", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["127.0.1", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["017700000001", "127.0.0.1"],
    ["127.0.0.01", "127.0.0.1"],
    ["127.0.0.1.", "127.0.0.1"],
    ["0x7F.0.0.1", "127.0.0.1"],
    ["１２７．０．０．１", "127.0.0.1"],
    ["0", "0.0.0.0"],
    ["0x", "0.0.0.0"],
    ["4294967295", "255.255.255.255"],
    ["0251.0376.0251.0376", "169.254.169.254"],
    ["169.254.43518", "169.254.169.254"],
    ["012.0.0.1", "10.0.0.1"],
    ["::1", "::1"],
    ["[::1]", "::1"],
    ["[0:0:0:0:0:0:0:1]", "::1"],
    ["[::FFFF:7F00:1]", "::ffff:127.0.0.1"],
    ["::ffff:127.0.0.1", "::ffff:127.0.0.1"],
    ["[2001:DB8:0:0::1]", "2001:db8::1"],
    ["FD00:EC2::254", "fd00:ec2::254"],
  ];
  test.each(addrs)("%p is the address %p", (host, addr) => {
    expect(normaliseHost(host)).toEqual({ addr });
  });

  const names: [string, string][] = [
    ["example.com", "example.com"],
    ["Example.COM.", "example.com"],
    ["bücher.example", "xn--bcher-kva.example"],
    ["a_b.example", "a_b.example"],
    ["127.0.0.1.nip.io", "127.0.0.1.nip.io"],
    ["0x7f.example", "0x7f.example"],
  ];
  test.each(names)("%p is the name %p", (host, name) => {
    expect(normaliseHost(host)).toEqual({ name });
  });

  test.each(["", "08.0.0.1", "1.2.3.4.5", "4294967296", "1.2.3.0x100", "00x7f.1", "127.0.0.1 ", "a b", "a@b", "%31.0.0.1", "example.com:443", "foo..bar", ".", "[1.2.3.4]", "[fe80::1%eth0]", "::1::2", "[::1", "a/b", `${"a".repeat(64)}.com`, `${"a.".repeat(130)}com`])(
    "%p is an error",
    (host) => {
      expect(normaliseHost(host)).toHaveProperty("error");
    },
  );
});

describe("the guard, with no policy at all", () => {
  const rows: [string, string[]][] = [
    [
      "guard: loopback",
      [
        "127.0.0.1",
        "127.255.255.254",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "0x7f000001",
        "017700000001",
        "127.0.0.1.",
        "１２７．０．０．１",
        "::1",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "::ffff:127.0.0.1",
        "[::ffff:7f00:1]",
        "::127.0.0.1",
        "::ffff:0:127.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::7f00:1",
      ],
    ],
    ["guard: unspecified", ["0.0.0.0", "0", "0x0", "0.1.2.3", "::", "[::]", "::ffff:0.0.0.0"]],
    ["guard: link-local", ["169.254.1.1", "0xa9fe0101", "169.254.257", "fe80::1", "[FE80::abcd]", "febf::1", "::ffff:169.254.1.1"]],
    [
      "guard: cloud metadata",
      [
        "169.254.169.254",
        "2852039166",
        "0xa9.0xfe.0xa9.0xfe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "fd00:ec2::254",
        "[FD00:EC2:0::254]",
        "100.100.100.200",
      ],
    ],
    ["guard: multicast", ["224.0.0.1", "239.255.255.250", "0xe0000001", "ff02::1", "ff05::1:3", "::ffff:224.0.0.251"]],
    ["guard: broadcast", ["255.255.255.255", "4294967295", "0xffffffff", "::ffff:255.255.255.255"]],
    ["guard: an address of this host", ["10.200.0.1", "::ffff:10.200.0.1", "fd70:7077:ac8:4::1", "[FD70:7077:AC8:4:0::1]", "203.0.113.200"]],
    ["guard: private", ["10.0.0.1", "167772161", "012.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1", "fec0::1", "::ffff:10.1.2.3", "64:ff9b::a00:1"]],
    ["guard: shared address space (CGNAT)", ["100.64.0.1", "100.127.255.255"]],
    ["guard: documentation", ["192.0.2.1", "198.51.100.7", "203.0.113.1", "2001:db8::1", "3fff::1", "::ffff:203.0.113.1"]],
    ["guard: benchmarking", ["198.18.0.1", "198.19.255.255", "2001:2::1"]],
    ["guard: reserved", ["240.0.0.1", "0xf0000001", "254.1.2.3", "192.0.0.8", "2002:c000:0204::1", "2001::1"]],
  ];
  for (const [reason, spellings] of rows) {
    test.each(spellings)(`%p: ${reason}`, (host) => {
      for (const mode of ["enforce", "audit"] as const) {
        const v = decide(policy({ mode }), host, 443);
        expect(v).toMatchObject({ allowed: false, outcome: "denied", rule: null });
        expect(v.reason.startsWith(reason)).toBe(true);
      }
    });
  }

  test("the form that carries an IPv4 address is named", () => {
    expect(decide(NONE, "64:ff9b::a9fe:a9fe").reason).toBe("guard: cloud metadata 169.254.169.254 (64:ff9b::a9fe:a9fe is the NAT64 form of 169.254.169.254)");
    expect(decide(NONE, "::127.0.0.1").reason).toContain("IPv4-compatible form of 127.0.0.1");
  });

  test.each(["metadata.google.internal", "METADATA.Google.Internal.", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"])("the metadata name %p", (name) => {
    const t = decideTarget(NONE, name, 80, null);
    expect(t.kind).toBe("name");
    expect(t.verdict).toMatchObject({ allowed: false, reason: expect.stringMatching(/^guard: cloud metadata name /) });
    // ... even if the caller resolves it anyway, to a public address.
    expect(decideResolved(NONE, name.toLowerCase().replace(/\.$/, ""), ["192.0.2.1"], 80, null).verdict.allowed).toBe(false);
  });

  test.each(["localhost", "LOCALHOST", "foo.localhost", "localhost."])("%p is loopback by name, before any lookup", (name) => {
    expect(decideTarget(NONE, name, 443, null).verdict).toMatchObject({ allowed: false, reason: expect.stringMatching(/^guard: loopback name /) });
  });

  test("the proxy's own door", () => {
    expect(decide(NONE, "127.0.0.1", 3128).reason).toBe("guard: the proxy's own door 127.0.0.1:3128");
    expect(decide(NONE, "10.200.0.1", 3128).reason).toBe("guard: the proxy's own door 10.200.0.1:3128");
    expect(decide(NONE, "::ffff:10.200.0.1", 3128).reason).toContain("the proxy's own door");
    expect(decide(NONE, "0x7f.1", 3128).reason).toContain("the proxy's own door");
    // Another host on the same port is not the door.
    expect(decide(NONE, "93.184.216.34", 3128).allowed).toBe(true);
  });

  test("public addresses, and the edges of the private ranges, are allowed", () => {
    for (const host of ["93.184.216.34", "8.8.8.8", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "11.0.0.0", "198.17.255.255", "198.20.0.0", "223.255.255.255", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "fbff::1", "fe00::1"]) {
      expect(decide(NONE, host)).toEqual({ allowed: true, outcome: "ok", rule: null, reason: "default: no allow rules (the guard and deny rules alone decide)" });
    }
  });

  test("the guard holds whatever the rules say", () => {
    const p = policy({ allow: ["0.0.0.0/0:*", "[::/0]:*", "*.example.com:*"] });
    for (const host of ["127.0.0.1", "169.254.169.254", "::1", "fe80::1", "224.0.0.1", "255.255.255.255", "10.200.0.1", "203.0.113.200"]) {
      expect(decide(p, host).allowed).toBe(false);
    }
    expect(decide(p, "a.example.com", 443, null, ["127.0.0.1"]).reason).toBe("guard: loopback 127.0.0.0/8");
    // A wide CIDR is not an explicit allow for the private and reserved rows.
    expect(decide(p, "10.1.2.3").reason).toBe("guard: private 10.0.0.0/8, unless a rule allows it by address or CIDR");
    expect(decide(p, "203.0.113.1").allowed).toBe(false);
    expect(decide(p, "93.184.216.34", 9999).allowed).toBe(true);
  });

  test("an allow rule inside a never row is a load error", () => {
    expect(loadError({ allow: ["127.0.0.1"] })).toBe('--allow "127.0.0.1": 127.0.0.1 is loopback (127.0.0.0/8), which the guard always refuses');
    expect(loadError({ allow: ["0x7f.1:80"] })).toContain("loopback");
    expect(loadError({ allow: ["169.254.0.0/16"] })).toContain("link-local");
    expect(loadError({ allow: ["[::ffff:169.254.169.254]:80"] })).toContain("cloud metadata");
    expect(loadError({ allow: ["metadata.google.internal"] })).toContain("cloud metadata name");
    expect(loadError({ allow: ["localhost:8080"] })).toContain("loopback");
    // Deny rules there are harmless.
    expect(policy({ deny: ["127.0.0.1"] }).deny.count).toBe(1);
  });

  test("this host's addresses are asked again after a second", async () => {
    let addrs = ["198.51.100.50"];
    let asked = 0;
    const p = policy({ allow: ["198.51.100.0/24"] }, {
      hostAddresses: () => {
        asked++;
        return addrs;
      },
    });
    expect(decide(p, "198.51.100.50").reason).toBe("guard: an address of this host 198.51.100.50");
    addrs = ["198.51.100.51"];
    for (let i = 0; i < 100; i++) expect(decide(p, "198.51.100.50").allowed).toBe(false); // kept
    expect(asked).toBe(1);
    await Bun.sleep(1100);
    expect(decide(p, "198.51.100.50").allowed).toBe(true);
    expect(decide(p, "198.51.100.51").allowed).toBe(false);
    expect(asked).toBe(2);
  });
});

describe("private and reserved ranges need an explicit address rule", () => {
  test("by CIDR, with its ports", () => {
    const p = policy({ allow: ["10.0.0.0/8:80", "203.0.113.0/24"] });
    expect(decide(p, "10.1.2.3", 80)).toEqual({ allowed: true, outcome: "ok", rule: "10.0.0.0/8:80", reason: "allow 10.0.0.0/8:80" });
    expect(decide(p, "167772161", 80).allowed).toBe(true);
    expect(decide(p, "::ffff:10.1.2.3", 80).allowed).toBe(true);
    expect(decide(p, "10.1.2.3", 443).allowed).toBe(false);
    expect(decide(p, "203.0.113.9", 443).allowed).toBe(true);
    expect(decide(p, "203.0.113.9", 8080).allowed).toBe(false);
  });

  test("by address", () => {
    const p = policy({ allow: ["192.168.1.10:5432", "[fd12::5]:443"] });
    expect(decide(p, "192.168.1.10", 5432).allowed).toBe(true);
    expect(decide(p, "192.168.1.11", 5432).allowed).toBe(false);
    expect(decide(p, "fd12::5", 443).allowed).toBe(true);
    expect(decide(p, "[fd12:0::5]", 443).allowed).toBe(true);
  });

  test("a name rule is not enough: the address the name resolves to must be allowed too", () => {
    const p = policy({ allow: ["db.corp.example"] });
    expect(decide(p, "db.corp.example", 443, null, ["10.0.0.5"]).reason).toBe("guard: private 10.0.0.0/8, unless a rule allows it by address or CIDR");
    expect(decide(p, "db.corp.example", 443, null, ["93.184.216.34"]).allowed).toBe(true);
    const q = policy({ allow: ["db.corp.example", "10.0.0.0/24"] });
    expect(decide(q, "db.corp.example", 443, null, ["10.0.0.5"]).allowed).toBe(true);
  });

  test("in audit mode they stay refused", () => {
    const p = policy({ mode: "audit", allow: ["example.com"] });
    expect(decide(p, "10.0.0.1")).toMatchObject({ allowed: false, outcome: "denied" });
    expect(decide(p, "example.com", 443, null, ["192.168.0.1"])).toMatchObject({ allowed: false, outcome: "denied" });
  });
});

describe("rules", () => {
  test("*.suffix is any subdomain, not the apex", () => {
    const p = policy({ allow: ["*.example.com"] });
    const pub = ["93.184.216.34"];
    expect(decide(p, "a.example.com", 443, null, pub)).toEqual({ allowed: true, outcome: "ok", rule: "*.example.com", reason: "allow *.example.com" });
    expect(decide(p, "a.b.example.com", 80, null, pub).allowed).toBe(true);
    expect(decide(p, "A.Example.COM.", 443, null, pub).allowed).toBe(true);
    for (const host of ["example.com", "badexample.com", "example.com.evil.test", "a.example.co", "example.com-a.test"]) {
      expect(decide(p, host, 443, null, pub)).toMatchObject({ allowed: false, reason: "default: no allow rule matched" });
    }
  });

  test("an exact name matches itself only", () => {
    const p = policy({ allow: ["registry.npmjs.org"] });
    expect(decide(p, "registry.npmjs.org", 443, null, ["104.16.0.35"]).allowed).toBe(true);
    expect(decide(p, "x.registry.npmjs.org", 443, null, ["104.16.0.35"]).allowed).toBe(false);
    expect(decide(p, "npmjs.org", 443, null, ["104.16.0.35"]).allowed).toBe(false);
  });

  test("a rule without ports means 80 and 443", () => {
    const p = policy({ allow: ["93.184.216.34"] });
    expect(decide(p, "93.184.216.34", 80).allowed).toBe(true);
    expect(decide(p, "93.184.216.34", 443).allowed).toBe(true);
    for (const port of [1, 22, 79, 81, 442, 444, 8080, 65535]) expect(decide(p, "93.184.216.34", port).allowed).toBe(false);
  });

  test("port lists and ranges, edges included", () => {
    const p = policy({ allow: ["a.example.com:8000-8100", "b.example.com:80,443", "c.example.com:443", "d.example.com:*", "e.example.com:22,8000-8002,9000"] });
    const pub = ["93.184.216.34"];
    const ok = (host: string, port: number) => decide(p, host, port, null, pub).allowed;
    expect([7999, 8000, 8050, 8100, 8101].map((port) => ok("a.example.com", port))).toEqual([false, true, true, true, false]);
    expect([80, 443, 8080].map((port) => ok("b.example.com", port))).toEqual([true, true, false]);
    expect([80, 443].map((port) => ok("c.example.com", port))).toEqual([false, true]);
    expect([1, 80, 65535].map((port) => ok("d.example.com", port))).toEqual([true, true, true]);
    expect([22, 23, 7999, 8000, 8002, 8003, 9000, 9001].map((port) => ok("e.example.com", port))).toEqual([true, false, false, true, true, false, true, false]);
  });

  test("ports: parsing and errors", () => {
    expect(parsePorts("443")).toEqual([[443, 443]]);
    expect(parsePorts("443,80,81,82-90,85")).toEqual([
      [80, 90],
      [443, 443],
    ]);
    expect(parsePorts("1-65535")).toEqual([[1, 65535]]);
    expect(parsePorts("*")).toBeNull();
    for (const bad of ["0", "65536", "100-50", "abc", "", "80,", ",80", "80-", "-80", "1e3", " 80"]) expect(parsePorts(bad)).toHaveProperty("error");
    expect(loadError({ allow: ["example.com:0"] })).toBe('--allow "example.com:0": ports "0": a port is 1 to 65535');
    expect(loadError({ allow: ["example.com:8100-8000"] })).toContain("runs backwards");
  });

  test("IPv6 rules: brackets before ports, bare without", () => {
    expect(parseRule("[2001:db8::/32]:443")).toMatchObject({ portsGiven: true, ports: [[443, 443]] });
    expect(parseRule("[2001:db8::]/32:443")).toMatchObject({ portsGiven: true });
    expect(parseRule("2001:db8::/32")).toMatchObject({ portsGiven: false });
    expect(parseRule("[2606:4700::1111]:853")).toMatchObject({ host: { kind: "cidr", cidr: { len: 128 } } });
    const p = policy({ allow: ["[2606:4700::/32]:443", "2a00:1450::/29"] });
    expect(decide(p, "2606:4700::1111", 443).allowed).toBe(true);
    expect(decide(p, "2606:4700::1111", 80).allowed).toBe(false);
    expect(decide(p, "2606:4701::1", 443).allowed).toBe(false);
    expect(decide(p, "2a00:1450:4001::1", 80).allowed).toBe(true);
    expect(decide(p, "2a00:1458::1", 80).allowed).toBe(false);
  });

  test("rule errors", () => {
    expect(loadError({ allow: ["10.1.2.3/8"] })).toBe('--allow "10.1.2.3/8": 10.1.2.3/8 has address bits set beyond /8 (did you mean 10.0.0.0/8?)');
    expect(loadError({ allow: ["10.0.0.0/33"] })).toContain("prefix length must be 0 to 32");
    expect(loadError({ deny: ["a..b"] })).toContain("empty label");
    expect(loadError({ allow: [""] })).toContain("empty rule");
    expect(loadError({ allow: ["[::1"] })).toContain("unbalanced");
    expect(loadError({ allow: ["foo.*.com"] })).toContain("a wildcard is *.SUFFIX");
    expect(loadError({ allow: ["*example.com"] })).toContain("a wildcard is *.SUFFIX");
    expect(loadError({ allow: ["*.10.0.0.1"] })).toContain("needs a domain name");
  });
});

describe("wildcards over a public suffix are refused", () => {
  test.each(["*.com", "*.co.uk", "*.CO.UK", "*.github.io", "*.s3.amazonaws.com", "*.uk", "*.internal", "*"])("%p", (rule) => {
    expect(loadError({ allow: [rule] })).toMatch(/public suffix|top-level domain|wildcard is/);
    expect(loadError({ deny: [rule] })).toMatch(/public suffix|top-level domain|wildcard is/);
  });
  test("but not one label below it", () => {
    expect(policy({ allow: ["*.example.co.uk", "*.github.com", "*.user.github.io", "*.amazonaws.com", "*.corp.internal"] }).allow.count).toBe(5);
    expect(loadError({ allow: ["*.com"] })).toBe('--allow "*.com": *.com is a wildcard over the public suffix com, where anyone can register a name (list the sites instead)');
  });
});

describe("deny rules", () => {
  const pub = ["93.184.216.34"];
  test("deny wins over allow, whichever is more specific", () => {
    const p = policy({ allow: ["*.example.com", "bad.example.com"], deny: ["bad.example.com", "*.worse.example.com:443"] });
    expect(decide(p, "ok.example.com", 443, null, pub).allowed).toBe(true);
    const t = decideTarget(p, "bad.example.com", 443, null);
    expect(t.verdict).toEqual({ allowed: false, outcome: "denied", rule: "bad.example.com", reason: "deny bad.example.com" });
    expect(decide(p, "a.worse.example.com", 443, null, pub).reason).toBe("deny *.worse.example.com:443");
    expect(decide(p, "a.worse.example.com", 80, null, pub).allowed).toBe(true);
  });

  test("a deny CIDR applies to the addresses a name resolves to", () => {
    const p = policy({ allow: ["*.example.com"], deny: ["93.184.216.0/24"] });
    const r = decideResolved(p, "a.example.com", ["93.184.216.34", "93.184.217.1"], 443, null);
    expect(r.allowed).toEqual(["93.184.217.1"]);
    expect(decideResolved(p, "a.example.com", ["93.184.216.34"], 443, null).verdict.reason).toBe("deny 93.184.216.0/24");
  });

  test("with no allow rule, everything else stays allowed", () => {
    const p = policy({ deny: ["tracker.example"] });
    expect(decideTarget(p, "tracker.example", 443, null).verdict).toMatchObject({ allowed: false });
    expect(decide(p, "other.example", 443, null, pub).allowed).toBe(true);
    expect(decide(p, "93.184.216.34", 22).allowed).toBe(true);
  });
});

describe("exe rules (policy files)", () => {
  const dir = tempDir("policy-exe-");
  afterAll(() => dir.remove());
  const file = dir.path("p.yaml");
  writeFileSync(
    file,
    [
      "allow:",
      "  - host: github.com",
      "    exe: /usr/bin/git",
      "  - host: '*.npmjs.org'",
      "    exe: ['/usr/bin/*', '**/node']",
      "deny:",
      "  - host: '*.npmjs.org'",
      "    exe: /usr/bin/evil*",
    ].join("\n"),
  );
  const p = policy({ files: [file] });
  const pub = ["93.184.216.34"];

  test("match only requests made by those programs", () => {
    expect(decide(p, "github.com", 443, "/usr/bin/git", pub)).toMatchObject({ allowed: true, rule: "github.com exe=/usr/bin/git", reason: `allow github.com exe=/usr/bin/git (${file} allow[0])` });
    expect(decide(p, "github.com", 443, "/usr/bin/curl", pub).allowed).toBe(false);
    expect(decide(p, "github.com", 443, null, pub).allowed).toBe(false);
    expect(decide(p, "github.com", 443, "/usr/bin/git (deleted)", pub).allowed).toBe(true);
    expect(decide(p, "registry.npmjs.org", 443, "/usr/bin/curl", pub).allowed).toBe(true);
    expect(decide(p, "registry.npmjs.org", 443, "/usr/local/bin/node", pub).allowed).toBe(true);
    expect(decide(p, "registry.npmjs.org", 443, "/usr/local/bin/curl", pub).allowed).toBe(false);
    expect(decide(p, "registry.npmjs.org", 443, "/usr/bin/evil-tool", pub)).toMatchObject({ allowed: false, reason: expect.stringContaining("deny *.npmjs.org exe=/usr/bin/evil*") });
    // The deny rule names other programs: a request by an unknown process is not denied by it.
    expect(decideTarget(p, "registry.npmjs.org", 443, null).verdict).toMatchObject({ allowed: false, reason: "default: no allow rule matched" });
  });
});

describe("audit mode", () => {
  const pub = ["93.184.216.34"];
  test("would_deny for what enforce denies by rule or default; the guard still refuses", () => {
    const p = policy({ mode: "audit", allow: ["ok.example.com"], deny: ["bad.example.com"] });
    expect(decideTarget(p, "bad.example.com", 443, null).verdict).toBe("resolve");
    expect(decide(p, "bad.example.com", 443, null, pub)).toEqual({ allowed: true, outcome: "would_deny", rule: "bad.example.com", reason: "deny bad.example.com" });
    expect(decide(p, "other.example.com", 443, null, pub)).toEqual({ allowed: true, outcome: "would_deny", rule: null, reason: "default: no allow rule matched" });
    expect(decide(p, "ok.example.com", 443, null, pub)).toMatchObject({ allowed: true, outcome: "ok" });
    expect(decide(p, "93.184.216.34", 8080)).toMatchObject({ allowed: true, outcome: "would_deny" });
    expect(decide(p, "127.0.0.1", 443)).toMatchObject({ allowed: false, outcome: "denied" });
    expect(decideTarget(p, "metadata.google.internal", 80, null).verdict).toMatchObject({ allowed: false, outcome: "denied" });
    const r = decideResolved(p, "other.example.com", ["127.0.0.1", "93.184.216.34"], 443, null);
    expect(r).toEqual({ allowed: ["93.184.216.34"], verdict: { allowed: true, outcome: "would_deny", rule: null, reason: "default: no allow rule matched" } });
  });
});

describe("decideTarget and decideResolved", () => {
  test("a literal address is decided at once, in canonical form", () => {
    expect(decideTarget(NONE, "[::FFFF:5db8:d822]", 443, null)).toEqual({ kind: "address", addr: "::ffff:93.184.216.34", verdict: expect.objectContaining({ allowed: true }) });
  });

  test("a name is resolved unless the name alone decides", () => {
    expect(decideTarget(NONE, "Example.COM.", 443, null)).toEqual({ kind: "name", name: "example.com", verdict: "resolve" });
    const allowOnly = policy({ allow: ["a.example.com"] });
    expect(decideTarget(allowOnly, "a.example.com", 443, null).verdict).toBe("resolve");
    expect(decideTarget(allowOnly, "b.example.com", 443, null).verdict).toEqual({ allowed: false, outcome: "denied", rule: null, reason: "default: no allow rule matched" });
    // An address rule could still allow what b.example.com resolves to.
    const withCidr = policy({ allow: ["a.example.com", "93.184.216.0/24"] });
    expect(decideTarget(withCidr, "b.example.com", 443, null).verdict).toBe("resolve");
    expect(decideResolved(withCidr, "b.example.com", ["93.184.216.34"], 443, null).verdict.reason).toBe("allow 93.184.216.0/24");
  });

  test("bad hosts are refused", () => {
    expect(decideTarget(NONE, "08.0.0.1", 443, null)).toMatchObject({ kind: "name", verdict: { allowed: false, reason: "guard: bad host: 08.0.0.1 is not a valid IPv4 address" } });
    expect(decideTarget(policy({ mode: "audit" }), "a b", 443, null).verdict).toMatchObject({ allowed: false });
  });

  test("DNS rebinding: only the addresses checked here are connected to, in order", () => {
    const p = policy({ allow: ["*.example.com"] });
    const r = decideResolved(p, "a.example.com", ["127.0.0.1", "93.184.216.34", "169.254.169.254", "2606:2800:220:1::1", "::1", "10.0.0.1"], 443, null);
    expect(r.allowed).toEqual(["93.184.216.34", "2606:2800:220:1::1"]);
    expect(r.verdict.reason).toBe("allow *.example.com");
    const all = decideResolved(p, "a.example.com", ["127.0.0.1", "::ffff:169.254.169.254"], 443, null);
    expect(all).toEqual({ allowed: [], verdict: { allowed: false, outcome: "denied", rule: null, reason: "guard: loopback 127.0.0.0/8" } });
    expect(decideResolved(p, "a.example.com", [], 443, null).verdict.allowed).toBe(false);
  });

  test("addresses from a resolver in any spelling are checked as the address they spell, and kept as given", () => {
    const r = decideResolved(NONE, "x.example", ["2606:2800:0220:0001:0000:0000:0000:0001", "::FFFF:127.0.0.1", "0:0:0:0:0:0:0:1", "nonsense", "93.184.216.34"], 443, null);
    expect(r.allowed).toEqual(["2606:2800:0220:0001:0000:0000:0000:0001", "93.184.216.34"]);
  });
});

describe("policy files", () => {
  const dir = tempDir("policy-file-");
  afterAll(() => dir.remove());
  const write = (name: string, text: string) => {
    const f = dir.path(name);
    writeFileSync(f, text);
    return f;
  };

  test("YAML and JSON, strings and objects", () => {
    const y = write("ok.yaml", "allow:\n  - registry.npmjs.org\n  - host: '*.github.com'\n    ports: [443, '8000-8001']\n  - host: 10.20.0.0/16\n    ports: 5432\n    comment: the database\ndeny:\n  - '*.evil.example'\n");
    const j = write("ok.json", JSON.stringify({ allow: ["[2606:4700::/32]:443"], deny: [{ host: "bad.example", ports: "80,443" }] }));
    const p = policy({ files: [y, j] });
    expect(p.allow.count).toBe(4);
    expect(p.deny.count).toBe(2);
    expect(decide(p, "api.github.com", 8001, null, ["140.82.112.6"])).toMatchObject({ allowed: true, reason: `allow *.github.com:443,8000-8001 (${y} allow[1])` });
    expect(decide(p, "10.20.3.4", 5432)).toMatchObject({ allowed: true, rule: "10.20.0.0/16:5432" });
    expect(decide(p, "2606:4700::1", 443).allowed).toBe(true);
    expect(decideTarget(p, "bad.example", 80, null).verdict).toMatchObject({ allowed: false, reason: `deny bad.example:80,443 (${j} deny[0])` });
    expect(policy({ files: [write("empty-lists.yaml", "allow: []\ndeny:\n")] }).allow.count).toBe(0);
  });

  const errors: [string, string, string][] = [
    ["missing", "", "cannot read: no such file"],
    ["syntax.yaml", "allow:\n  - a.example\n - b.example\n", "not valid YAML (near line 3)"],
    ["syntax.json", "{\"allow\": [}", "not valid JSON"],
    ["empty.yaml", "", "empty (a policy file has allow: and deny: lists)"],
    ["list.yaml", "- a\n- b\n", "expected a mapping with allow: and deny: lists"],
    ["scalar.yaml", "hello\n", "expected a mapping with allow: and deny: lists"],
    ["topkey.yaml", "allow: []\nallwo: []\n", 'unknown key "allwo" at the top'],
    ["notlist.yaml", "allow: example.com\n", "allow: must be a list of entries"],
    ["entrytype.yaml", "allow:\n  - 42\n", "allow[0]: an entry is a RULE string"],
    ["entrykey.yaml", "allow:\n  - host: a.example\n    port: 443\n", 'allow[0]: unknown key "port"'],
    ["nohost.yaml", "allow:\n  - ports: 443\n", "allow[0]: host is missing"],
    ["badports.yaml", "allow:\n  - host: a.example\n    ports: [443, true]\n", "allow[0].ports"],
    ["badrule.yaml", "allow:\n  - ok.example\n  - '*.co.uk'\n", 'allow[1] "*.co.uk": *.co.uk is a wildcard over the public suffix co.uk'],
    ["twice.yaml", "deny:\n  - host: a.example:443\n    ports: 80\n", ': deny[0] "a.example:443": ports given twice'],
    ["portrange.yaml", "allow:\n  - host: a.example\n    ports: 9-1\n", "runs backwards"],
    ["exe.yaml", "allow:\n  - host: a.example\n    exe: curl\n", 'exe "curl": an executable is an absolute path or a glob'],
    ["exeempty.yaml", "allow:\n  - host: a.example\n    exe: []\n", "allow[0].exe"],
    ["never.yaml", "allow:\n  - 169.254.169.254\n", "cloud metadata"],
  ];
  test.each(errors)("%p: the error names the file, the entry and what is wrong", (name, text, message) => {
    const f = name === "missing" ? dir.path("missing.yaml") : write(name, text);
    const e = loadError({ files: [f] });
    expect(e.startsWith(f)).toBe(true);
    expect(e).toContain(message);
    expect(e).not.toContain("\n");
  });
});
