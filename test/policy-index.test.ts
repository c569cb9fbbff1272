// The policy's hot path against plain references, on random rules and requests: the name index
// (exact names, the longest *.suffix, the filter in front of its Maps) and the address index
// (longest prefix, rule order, ports) against a scan over every rule; the fast path for plain host
// names against the URL parser's path; and what deciding shares between decisions (verdicts made
// once, the last name's matches) never answers for another request.
import { describe, expect, test } from "bun:test";
import { decideResolved, decideTarget, loadPolicy, normaliseHost, type Policy, type Verdict } from "../src/policy/index.ts";
import { addrFacts, cidrContains, factsIP, formatIP, parseIP } from "../src/policy/address.ts";
import { formatRule, parseRule, portsMatch, type ParsedRule } from "../src/policy/rules.ts";
import { mulberry32 } from "./support/prng.ts";

const CTX = { hostAddresses: () => ["10.200.0.1"], doorPort: 3128 };
const PUBLIC = "93.184.216.34";

function load(allow: string[], deny: string[]): Policy {
  const p = loadPolicy({ allow, deny, files: [], mode: "enforce" }, CTX);
  if (typeof p === "string") throw new Error(p);
  return p;
}

interface RefRule {
  text: string;
  parsed: ParsedRule;
}

function ref(texts: string[]): RefRule[] {
  return texts.map((text) => {
    const parsed = parseRule(text);
    if ("error" in parsed) throw new Error(parsed.error);
    return { text: formatRule(parsed), parsed };
  });
}

/** The most specific rule for a name, by a scan over every rule: the exact name, else the longest suffix. */
function refName(rules: RefRule[], name: string, port: number): RefRule | null {
  const takes = (r: RefRule) => portsMatch(r.parsed.ports, port);
  const exact = rules.find((r) => r.parsed.host.kind === "name" && r.parsed.host.name === name && takes(r));
  if (exact) return exact;
  const labels = name.split(".");
  for (let i = 1; i < labels.length - 1; i++) {
    const sfx = labels.slice(i).join(".");
    const r = rules.find((r) => r.parsed.host.kind === "suffix" && r.parsed.host.suffix === sfx && takes(r));
    if (r) return r;
  }
  return null;
}

/** The most specific address rule, by a scan: the longest prefix holding the address, first in order, that takes the port. */
function refAddr(rules: RefRule[], addr: string, port: number): RefRule | null {
  const ip = parseIP(addr)!;
  const holding = rules.filter((r) => r.parsed.host.kind === "cidr" && cidrContains(r.parsed.host.cidr, ip) && portsMatch(r.parsed.ports, port));
  holding.sort((a, b) => (b.parsed.host as { cidr: { len: number } }).cidr.len - (a.parsed.host as { cidr: { len: number } }).cidr.len);
  return holding[0] ?? null;
}

/** The verdict of deny and allow matches as the policy gives it (enforce mode, no guard row). */
function refVerdict(deny: RefRule | null, allow: RefRule | null, allowCount: number): Pick<Verdict, "allowed" | "rule"> {
  if (deny) return { allowed: false, rule: deny.text };
  if (allowCount === 0) return { allowed: true, rule: null };
  return allow ? { allowed: true, rule: allow.text } : { allowed: false, rule: null };
}

const PORTS = ["", ":443", ":80", ":8000-8100", ":*", ":443,8443"];

describe("the name index agrees with a scan over every rule", () => {
  test("random exact and wildcard rules, random names and ports", () => {
    const rnd = mulberry32(0x1dea);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    // Few labels, so that names, rules and their suffixes collide often (and in the filter too);
    // short sites and TLDs too, for suffixes of every length ("x.io" has four characters).
    const label = () => pick(["a", "b", "ab", "ba", "cdn", "api", "x-1", "ex_2"]);
    const name = (n: number) => [...Array.from({ length: n }, label), pick(["example", "sample", "x", "ab"]), pick(["com", "org", "io"])].join(".");
    for (let round = 0; round < 30; round++) {
      const allow: string[] = [];
      const deny: string[] = [];
      for (let i = 0; i < 1 + Math.floor(rnd() * 40); i++) {
        const host = rnd() < 0.5 ? name(Math.floor(rnd() * 3)) : `*.${name(Math.floor(rnd() * 2))}`;
        (rnd() < 0.25 ? deny : allow).push(`${host}${pick(PORTS)}`);
      }
      const p = load(allow, deny);
      const [refAllow, refDeny] = [ref(allow), ref(deny)];
      for (let i = 0; i < 300; i++) {
        const n = name(Math.floor(rnd() * 4));
        const port = pick([443, 80, 8080, 8000, 8100, 8443]);
        const want = refVerdict(refName(refDeny, n, port), refName(refAllow, n, port), allow.length);
        const got = decideResolved(p, n, [PUBLIC], port, null).verdict;
        expect({ name: n, port, allowed: got.allowed, rule: got.rule }).toEqual({ name: n, port, ...want });
      }
    }
  });
});

describe("the address index agrees with a scan over every rule", () => {
  test("random IPv4 and IPv6 CIDRs of every length, random addresses and ports", () => {
    const rnd = mulberry32(0xadd7);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    // Public addresses only (no guard row), near each other so that blocks nest.
    const v4 = () => `${pick([11, 12])}.${pick([0, 1, 128])}.${int(4)}.${int(256)}`;
    const v6 = () => `2a0${int(2)}:${pick(["0", "1", "8000"])}::${int(4).toString(16)}`;
    /** The block of a random length that holds the address. */
    const block = (addr: string, max: number) => {
      const len = int(max + 1);
      return addr.includes(":") ? `[${maskText(addr, len)}/${len}]` : `${maskText(addr, len)}/${len}`;
    };
    for (let round = 0; round < 30; round++) {
      const allow: string[] = [];
      const deny: string[] = [];
      for (let i = 0; i < 1 + int(40); i++) {
        const six = rnd() < 0.4;
        const text = block(six ? v6() : v4(), six ? 128 : 32);
        (rnd() < 0.25 ? deny : allow).push(`${text}${pick(PORTS) || (six ? ":443" : "")}`);
      }
      const p = load(allow, deny);
      const [refAllow, refDeny] = [ref(allow), ref(deny)];
      for (let i = 0; i < 300; i++) {
        const addr = rnd() < 0.4 ? v6() : v4();
        const port = pick([443, 80, 8080, 8000, 8100, 8443]);
        const want = refVerdict(refAddr(refDeny, addr, port), refAddr(refAllow, addr, port), allow.length);
        const got = decideTarget(p, addr, port, null).verdict as Verdict;
        expect({ addr, port, allowed: got.allowed, rule: got.rule }).toEqual({ addr, port, ...want });
      }
    }
  });
});

/** `addr` with every bit past the first `len` cleared, as text. */
function maskText(addr: string, len: number): string {
  const f = addrFacts(addr)!;
  if (f.v === 4) {
    const n = len === 0 ? 0 : (f.n & (-1 << (32 - len))) >>> 0;
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
  }
  const w = [f.w0, f.w1, f.w2, f.w3].map((x, i) => {
    const bits = Math.max(0, Math.min(32, len - 32 * i));
    return bits === 0 ? 0 : (x & (-1 << (32 - bits))) >>> 0;
  });
  return w.flatMap((x) => [(x >>> 16).toString(16), (x & 0xffff).toString(16)]).join(":");
}

describe("the fast path for plain names agrees with the URL parser's", () => {
  /** What normaliseHost gives a host through the URL parser alone (its path for every other host). */
  function viaUrl(host: string): { name: string } | { addr: string } | { error: true } {
    let hostname: string;
    try {
      hostname = new URL(`http://${host}/`).hostname;
    } catch {
      return { error: true };
    }
    if (/^\d+\.\d+\.\d+\.\d+$/.test(hostname)) return { addr: hostname };
    const name = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
    if (name.length === 0 || name.length > 253 || name.split(".").some((l) => l.length === 0 || l.length > 63)) return { error: true };
    return { name };
  }

  test("random hosts of letters, digits, dots, - and _ (names, numeric last labels, empty and long labels)", () => {
    const rnd = mulberry32(0x9a11);
    const chars = "az09x.-_f";
    const hosts = [".", "..", "a.", "a..", "0x", "a.0x", "a.0x.", "a.0xg", "a.09", "1.2.3.4.", "a.1.", `${"x".repeat(63)}.a`, `${"x".repeat(64)}.a`, `${`${"a".repeat(62)}.`.repeat(4)}b`];
    for (let i = 0; i < 20_000; i++) hosts.push(Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => chars[Math.floor(rnd() * chars.length)]).join(""));
    for (const host of hosts) {
      const got = normaliseHost(host);
      const want = viaUrl(host);
      expect({ host, got: "error" in got ? { error: true } : got }).toEqual({ host, got: want });
    }
  });
});

describe("the address parser agrees with Node's URL parser", () => {
  /**
   * The canonical text of each address by Node's URL parser (the WHATWG reference for http URLs),
   * or null. Node, not Bun: Bun's URL takes a trailing ":" ("1::2:") and its net.isIPv6 refuses an
   * IPv4 tail after other groups ("1:0::2:1.2.3.4"). `strict`: a dotted quad only as parseIP takes
   * it (addrFacts also reads octal, hex and shorter forms, through normaliseHost).
   */
  function viaNodeUrl(texts: string[]): { strict: string | null; any: string | null }[] {
    const script = `
      const quad = /^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$/;
      const host = (t) => { try { return new URL(t.includes(":") ? "http://[" + t + "]/" : "http://" + t + "/").hostname; } catch { return null; } };
      const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
      console.log(JSON.stringify(texts.map((t) => {
        const h = host(t);
        if (t.includes(":")) return { strict: h && h.slice(1, -1), any: h && h.slice(1, -1) };
        return { strict: quad.test(t) ? t : null, any: h !== null && quad.test(h) ? h : null };
      })));`;
    const p = Bun.spawnSync(["node", "-e", script], { stdin: Buffer.from(JSON.stringify(texts)), stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`node: ${p.stderr.toString()}`);
    return JSON.parse(p.stdout.toString());
  }
  /** The URL's canonical text writes an IPv4 tail in hex ("::ffff:102:304"), formatIP mapped ones dotted. */
  const canonical = (t: string | null) => (t === null ? null : t.includes(":") ? formatIP(parseIP(t)!) : t);

  test("random dotted quads and IPv6 texts (compressed, with IPv4 tails, malformed)", () => {
    const rnd = mulberry32(0x1b6e);
    const int = (n: number) => Math.floor(rnd() * n);
    const part = () => [String(int(300)), `0${int(10)}`, "00", String(int(10)), "", "1234", "x"][int(rnd() < 0.8 ? 4 : 7)]!;
    const group = () => [int(0x10000).toString(16), int(16).toString(16), "0", "00000", "", "g1", "ABCD"][int(rnd() < 0.8 ? 3 : 7)]!;
    const texts: string[] = [];
    for (let i = 0; i < 30_000; i++) {
      if (rnd() < 0.4) texts.push(Array.from({ length: rnd() < 0.9 ? 4 : 2 + int(4) }, part).join("."));
      else {
        const n = rnd() < 0.3 ? 8 : int(9);
        const groups = Array.from({ length: n }, group);
        if (rnd() < 0.7) groups.splice(int(n + 1), 0, "");
        if (rnd() < 0.2) groups.push(Array.from({ length: 4 }, part).join("."));
        texts.push(groups.join(":"));
      }
    }
    const want = viaNodeUrl(texts);
    let valid = 0;
    texts.forEach((text, i) => {
      const [ip, facts] = [parseIP(text), addrFacts(text)];
      if (want[i]!.strict !== null) valid++;
      expect({ text, got: ip && formatIP(ip), facts: facts && formatIP(factsIP(facts)) }).toEqual({ text, got: canonical(want[i]!.strict), facts: canonical(want[i]!.any) });
    });
    expect(valid).toBeGreaterThan(3000);
  });
});

describe("what decisions share", () => {
  test("a rule's verdict is made once and cannot be changed by a caller", () => {
    const p = load(["*.example.com:443"], []);
    const a = decideResolved(p, "a.example.com", [PUBLIC], 443, null).verdict;
    const b = decideResolved(p, "b.example.com", [PUBLIC], 443, null).verdict;
    expect(a).toBe(b);
    expect(() => {
      (a as { allowed: boolean }).allowed = false;
    }).toThrow(TypeError);
    expect(decideResolved(p, "c.example.com", [PUBLIC], 443, null).verdict).toEqual({ allowed: true, outcome: "ok", rule: "*.example.com:443", reason: "allow *.example.com:443" });
  });

  test("the last name's matches never answer for another port, program or name", () => {
    const p = load(["a.example.com:443", "*.example.org:80"], ["a.example.com:8443"]);
    const d = (name: string, port: number, exe: string | null) => decideResolved(p, name, [PUBLIC], port, exe).verdict;
    expect(d("a.example.com", 443, null).allowed).toBe(true);
    expect(d("a.example.com", 8443, null)).toMatchObject({ allowed: false, rule: "a.example.com:8443" });
    expect(d("a.example.com", 80, null)).toMatchObject({ allowed: false, rule: null });
    expect(d("a.example.com", 443, "/usr/bin/curl").allowed).toBe(true);
    expect(d("b.example.org", 80, null).allowed).toBe(true);
    expect(d("b.example.org", 443, null).allowed).toBe(false);
    expect(d("a.example.com", 443, null).allowed).toBe(true);
  });

  test("an address's facts are its own: an IPv6 form is checked as the IPv4 address it carries, then as itself", () => {
    const p = load(["11.0.0.0/8:443", "[2a00::/12]:8443"], []);
    expect(decideTarget(p, "[::ffff:11.1.2.3]", 443, null).verdict).toMatchObject({ allowed: true, rule: "11.0.0.0/8:443" });
    expect(decideTarget(p, "[::ffff:11.1.2.3]", 8443, null).verdict).toMatchObject({ allowed: false });
    expect(decideTarget(p, "[2a00::1]", 8443, null).verdict).toMatchObject({ allowed: true, rule: "[2a00::/12]:8443" });
    expect(decideResolved(p, "x.example", ["2a00::1", "11.1.2.3"], 443, null)).toEqual({ allowed: ["11.1.2.3"], verdict: expect.objectContaining({ rule: "11.0.0.0/8:443" }) });
  });
});
