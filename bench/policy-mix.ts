// The policy bench's decisions: 1,000 rules that mix what a real policy holds (exact names,
// *.suffix wildcards, IPv4 and IPv6 CIDRs of many prefix lengths, port lists and ranges, a few exe
// rules, deny rules), and requests that mix names an allow rule matches, names no rule matches
// (decided before resolving), names denied by a rule, literal addresses (public, private with and
// without a rule, guard rows in odd spellings) and names resolved to two addresses. One decision
// is what the proxy asks for one request: decideTarget, and for a name that needs its addresses,
// decideResolved too. No traffic: addresses are made up, nothing resolves.
import { decideResolved, decideTarget, loadPolicy, type Policy, type Verdict } from "../src/policy/index.ts";
import { mulberry32 } from "../test/support/prng.ts";

export interface Req {
  host: string;
  port: number;
  exe: string | null;
  addrs: string[];
}

const TLDS = ["com", "org", "net", "io", "dev", "co.uk", "de"];
const PORTS = ["", ":443", ":80,443", ":8000-8100", ":22,443,8443"];

/** `ruleCount` rules (plus `extraAllow`) and 4,096 requests, the same for the same seed. */
export async function decisionMix(ruleCount: number, extraAllow: readonly string[] = []): Promise<{ policy: Policy; requests: Req[] }> {
  const rnd = mulberry32(0x9011c7);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const word = () => Array.from({ length: 4 + int(6) }, () => String.fromCharCode(97 + int(26))).join("");

  const sites: string[] = [];
  const allow: string[] = [];
  const deny: string[] = [];
  const exeEntries: string[] = [];
  for (let i = 0; i < ruleCount; i++) {
    const kind = i % 10;
    const site = `${word()}.${pick(TLDS)}`;
    sites.push(site);
    if (kind < 4) allow.push(`${pick(["", "api.", "cdn.", "www."])}${site}${pick(PORTS)}`);
    else if (kind < 6) allow.push(`*.${site}${pick(PORTS)}`);
    else if (kind === 6) {
      const [a, b, c] = [11 + int(80), int(256), int(256)];
      allow.push(pick([`${a}.${b}.0.0/16`, `${a}.${b}.${c & 0xf0}.0/20`, `${a}.${b}.${c}.0/24`]) + pick(PORTS));
    } else if (kind === 7) allow.push(`[2a0${int(10)}:${int(0xffff).toString(16)}::/${pick([32, 48])}]${pick(PORTS) || ":443"}`);
    else if (kind === 8) deny.push(pick([`tracker.${site}`, `*.ads.${site}`, `${11 + int(80)}.${int(256)}.${int(256)}.${int(256)}`]));
    else exeEntries.push(`  - host: "*.${site}"\n    exe: ["/usr/bin/${word()}", "/opt/**"]`);
  }
  allow.push("10.20.0.0/16:5432", "203.0.113.0/24", ...extraAllow);

  const file = `${process.env.TMPDIR ?? "/tmp"}/proxywall-bench-policy-${process.pid}.yaml`;
  await Bun.write(file, `allow:\n${exeEntries.join("\n")}\n`);
  const loaded = loadPolicy({ allow, deny, files: exeEntries.length > 0 ? [file] : [], mode: "enforce" }, { hostAddresses: () => ["10.200.0.1", "fd70:7077:ac8:4::1"], doorPort: 3128 });
  await Bun.file(file).delete();
  if (typeof loaded === "string") throw new Error(loaded);

  const publicAddr = () => `${11 + int(80)}.${int(256)}.${int(256)}.${1 + int(254)}`;
  const requests: Req[] = [];
  for (let i = 0; i < 4096; i++) {
    const site = pick(sites);
    const port = pick([443, 443, 443, 80, 8080, 8443]);
    const exe = pick([null, "/usr/bin/curl", "/opt/app/bin/node"]);
    const r = int(12);
    const host =
      r < 3
        ? `${pick(["api.", "cdn.", "www.", "a.b."])}${site}` // names that a rule may match
        : r < 5
          ? `${word()}.${word()}.${pick(TLDS)}` // names no rule matches
          : r === 5
            ? `tracker.${site}`
            : r === 6
              ? publicAddr()
              : r === 7
                ? pick(["10.20.1.2", "10.99.0.1", "203.0.113.7", "192.168.0.1", "[2a03:1::5]", "[fd00::1]"])
                : r === 8
                  ? pick(["0x7f.1", "2130706433", "[::ffff:169.254.169.254]", "169.254.169.254", "[::1]", "metadata.google.internal"])
                  : `${pick(["", "www.", "api."])}${site}`;
    requests.push({ host, port, exe, addrs: [publicAddr(), `2a0${int(10)}:${int(0xffff).toString(16)}::${int(0xffff).toString(16)}`] });
  }
  return { policy: loaded, requests };
}

/** `n` decisions over the requests, from `start`; returns a number that depends on every answer. */
export function decideAll(policy: Policy, requests: readonly Req[], n: number, start = 0): number {
  let sink = 0;
  const mask = requests.length - 1; // a power of two
  for (let i = start; i < start + n; i++) {
    const r = requests[i & mask]!;
    const t = decideTarget(policy, r.host, r.port, r.exe);
    if (t.kind === "name" && t.verdict === "resolve") sink += decideResolved(policy, t.name, r.addrs, r.port, r.exe).allowed.length;
    else sink += (t.verdict as Verdict).allowed ? 1 : 0;
  }
  return sink;
}

/** What the mix is: how many requests take each path, and how many are allowed. */
export function mixOf(policy: Policy, requests: readonly Req[]): { address: number; nameDecided: number; resolved: number; allowed: number } {
  const mix = { address: 0, nameDecided: 0, resolved: 0, allowed: 0 };
  for (const r of requests) {
    const t = decideTarget(policy, r.host, r.port, r.exe);
    if (t.kind === "address") {
      mix.address++;
      if (t.verdict.allowed) mix.allowed++;
    } else if (t.verdict === "resolve") {
      mix.resolved++;
      if (decideResolved(policy, t.name, r.addrs, r.port, r.exe).verdict.allowed) mix.allowed++;
    } else mix.nameDecided++;
  }
  return mix;
}
