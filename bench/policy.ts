// Benchmark of the policy decision: decisions per second with 1,000 rules (target: at least
// 1,000,000/s on one core; JavaScript runs it on one thread). The rules mix what a real policy
// holds: exact names, *.suffix wildcards, IPv4 and IPv6 CIDRs of many prefix lengths, port lists
// and ranges, a few exe rules, and deny rules. The requests mix names that an allow rule matches,
// names no rule matches (decided before resolving), names denied by a rule, literal addresses
// (public, private with and without a rule, guard rows in odd spellings) and names resolved to two
// addresses. One decision is what the proxy asks for one request: decideTarget, and for a name
// that needs its addresses, decideResolved too. No traffic: addresses are made up, nothing resolves.
//
//   node_modules/.bin/bun bench/policy.ts [--rules N] [--seconds S] [--runs N]
import { decideResolved, decideTarget, loadPolicy, type Policy, type Verdict } from "../src/policy/index.ts";
import { mulberry32 } from "../test/support/prng.ts";

const TARGET_PER_S = 1_000_000;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!(n > 0)) throw new Error(`${name} needs a positive number`);
  return n;
}
const RULES = flag("--rules", 1000);
const SECONDS = flag("--seconds", 2);
const RUNS = flag("--runs", 3);

const rnd = mulberry32(0x9011c7);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const word = () => Array.from({ length: 4 + int(6) }, () => String.fromCharCode(97 + int(26))).join("");
const TLDS = ["com", "org", "net", "io", "dev", "co.uk", "de"];
const PORTS = ["", ":443", ":80,443", ":8000-8100", ":22,443,8443"];

// ---- rules -------------------------------------------------------------------------------------

const sites: string[] = [];
const allow: string[] = [];
const deny: string[] = [];
const exeEntries: string[] = [];
for (let i = 0; i < RULES; i++) {
  const kind = i % 10;
  const site = `${word()}.${pick(TLDS)}`;
  sites.push(site);
  if (kind < 4) allow.push(`${pick(["", "api.", "cdn.", "www."])}${site}${pick(PORTS)}`);
  else if (kind < 6) allow.push(`*.${site}${pick(PORTS)}`);
  else if (kind === 6) {
    const [a, b, c] = [11 + int(80), int(256), int(256)];
    allow.push(pick([`${a}.${b}.0.0/16`, `${a}.${b}.${c & 0xf0}.0/20`, `${a}.${b}.${c}.0/24`]) + pick(PORTS));
  }
  else if (kind === 7) allow.push(`[2a0${int(10)}:${int(0xffff).toString(16)}::/${pick([32, 48])}]${pick(PORTS) || ":443"}`);
  else if (kind === 8) deny.push(pick([`tracker.${site}`, `*.ads.${site}`, `${11 + int(80)}.${int(256)}.${int(256)}.${int(256)}`]));
  else exeEntries.push(`  - host: "*.${site}"\n    exe: ["/usr/bin/${word()}", "/opt/**"]`);
}
allow.push("10.20.0.0/16:5432", "203.0.113.0/24");

const file = `${process.env.TMPDIR ?? "/tmp"}/proxywall-bench-policy-${process.pid}.yaml`;
await Bun.write(file, `allow:\n${exeEntries.join("\n")}\n`);
const loaded = loadPolicy({ allow, deny, files: [file], mode: "enforce" }, { hostAddresses: () => ["10.200.0.1", "fd70:7077:ac8:4::1"], doorPort: 3128 });
await Bun.file(file).delete();
if (typeof loaded === "string") throw new Error(loaded);
const policy: Policy = loaded;

// ---- requests ----------------------------------------------------------------------------------

interface Req {
  host: string;
  port: number;
  exe: string | null;
  addrs: string[];
}
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

// ---- the loop ----------------------------------------------------------------------------------

let sink = 0;
function decideAll(n: number): void {
  for (let i = 0; i < n; i++) {
    const r = requests[i & 4095]!;
    const t = decideTarget(policy, r.host, r.port, r.exe);
    if (t.kind === "name" && t.verdict === "resolve") {
      const d = decideResolved(policy, t.name, r.addrs, r.port, r.exe);
      sink += d.allowed.length;
    } else sink += (t.verdict as Verdict).allowed ? 1 : 0;
  }
}

// What the mix is, once.
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

decideAll(200_000); // warm-up: let the JIT compile the hot paths
const rates: number[] = [];
for (let run = 0; run < RUNS; run++) {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    decideAll(100_000);
    n += 100_000;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const mainS = (main.user + main.system) / 1e6;
  rates.push(n / mainS);
  console.log(
    `run ${run + 1}: ${n.toLocaleString("en")} decisions: ${Math.round(n / mainS).toLocaleString("en")}/s of the deciding thread's CPU time (${mainS.toFixed(2)} s), ` +
      `${Math.round(n / cpuS).toLocaleString("en")}/s of the process's (${cpuS.toFixed(2)} s, with the collector's and compiler's threads), ${Math.round(n / wall).toLocaleString("en")}/s wall (${wall.toFixed(2)} s)`,
  );
}
rates.sort((a, b) => a - b);
const median = rates[Math.floor(rates.length / 2)]!;
console.log(
  `policy: ${policy.allow.count} allow + ${policy.deny.count} deny rules; requests: ${requests.length} (${mix.address} literal addresses, ${mix.nameDecided} names decided before resolving, ${mix.resolved} names resolved to 2 addresses; ${mix.allowed} allowed)`,
);
console.log(`decisions per second of one core (the deciding thread's CPU time; wall clock also counts time the machine gave other processes): best ${Math.round(rates.at(-1)!).toLocaleString("en")}, median ${Math.round(median).toLocaleString("en")} (target ${TARGET_PER_S.toLocaleString("en")}): ${median >= TARGET_PER_S ? "ok" : "BELOW TARGET"}`);
if (sink < 0) console.log(sink);
