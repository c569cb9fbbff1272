// The policy: the guard, and the allow and deny rules indexed for the hot path (exact names in a
// Map, `*.suffix` by walking the labels of the name, CIDRs in one Map per prefix length), and the
// decisions the proxy asks for.
import { type Cidr, type IP, carriedIPv4, formatCidr, formatIP, normaliseHost, parseIP, wordMask } from "./address.ts";
import { GUARD_ROWS, type GuardHit, METADATA_NAMES, guardRowOf, isLocalhostName } from "./guard.ts";
import { type HostMatcher, type PortSet, formatPorts, formatRule, parsePorts, parseRule, portsMatch, DEFAULT_PORTS } from "./rules.ts";
import { type RawEntry, readPolicyFile } from "./file.ts";

export type Mode = "enforce" | "audit";

export interface PolicyOptions {
  allow: string[];
  deny: string[];
  files: string[];
  mode: Mode;
}

export interface PolicyContext {
  /** Addresses of proxywall's own namespace interfaces (asked again at most once a second). */
  hostAddresses: () => string[];
  /** The port the proxy listens on: its own door, refused on loopback and host addresses. */
  doorPort?: number;
}

export interface Verdict {
  allowed: boolean;
  outcome: "ok" | "denied" | "would_deny";
  /** The rule that decided, as written (`*.example.com:443`), or null for the guard and defaults. */
  rule: string | null;
  /** e.g. "guard: loopback 127.0.0.0/8", "deny *.example.com:443", "default: no allow rule matched". */
  reason: string;
}

export interface Rule {
  action: "allow" | "deny";
  host: HostMatcher;
  ports: PortSet;
  /** Executable globs; null when the rule is for every program. */
  exe: readonly string[] | null;
  /** The rule as written again: `*.example.com:443`, plus ` exe=GLOB,...`. */
  text: string;
  /** Where it came from: `FILE allow[2]`, or null for --allow/--deny. */
  origin: string | null;
}

interface NameMatches {
  name: string;
  port: number;
  exe: string | null;
  deny: IndexedRule | null;
  allow: IndexedRule | null;
}

interface IndexedRule extends Rule {
  globs: readonly Bun.Glob[] | null;
  label: string;
}

const HOST_CACHE_MS = 1000;

// This host's addresses are asked for again once a second. Reading the clock on every decision
// cost a tenth of the decision's time, so one unref'd timer, shared by every policy, counts the
// seconds instead, and a decision compares two numbers.
let hostEpoch = 0;
let ticking = false;
function currentEpoch(): number {
  if (!ticking) {
    ticking = true;
    setInterval(() => {
      hostEpoch++;
    }, HOST_CACHE_MS).unref();
  }
  return hostEpoch;
}

/** One action's rules, indexed. */
class RuleIndex {
  /** Exact names and `*.suffix` suffixes, by nameHash (collisions are checked against the text). */
  readonly exact = new Map<number, IndexedRule[]>();
  readonly suffix = new Map<number, IndexedRule[]>();
  /** Per prefix length 0..32: masked address -> rules; `v4Lens` lists the lengths used, longest first. */
  readonly v4: Map<number, IndexedRule[]>[] = [];
  v4Lens: number[] = [];
  readonly v6: Map<number, IndexedRule[]>[] = [];
  v6Lens: number[] = [];
  count = 0;
  nameCount = 0;
  addrCount = 0;

  add(r: IndexedRule): void {
    this.count++;
    const push = <K>(m: Map<K, IndexedRule[]>, k: K) => {
      const list = m.get(k);
      if (list) list.push(r);
      else m.set(k, [r]);
    };
    const h = r.host;
    if (h.kind === "name") {
      this.nameCount++;
      push(this.exact, nameHash(h.name));
    } else if (h.kind === "suffix") {
      this.nameCount++;
      push(this.suffix, nameHash(h.suffix));
    } else {
      this.addrCount++;
      const { ip, len } = h.cidr;
      if (ip.v === 4) {
        let m = this.v4[len];
        if (!m) this.v4[len] = m = new Map();
        push(m, ip.n | 0); // int32 keys, as matchAddr computes them
        if (!this.v4Lens.includes(len)) this.v4Lens = [...this.v4Lens, len].sort((a, b) => b - a);
      } else {
        let m = this.v6[len];
        if (!m) this.v6[len] = m = new Map();
        push(m, v6Key(ip.w, len));
        if (!this.v6Lens.includes(len)) this.v6Lens = [...this.v6Lens, len].sort((a, b) => b - a);
      }
    }
  }

  /** The most specific rule for the name (exact, then the longest suffix) that takes port and exe. */
  matchName(name: string, port: number, exe: string | null): IndexedRule | null {
    if (this.nameCount === 0) return null;
    return this.matchHashed(name, hashName(name), port, exe);
  }

  /** matchName with the name's suffix hashes computed already (by hashName, into SUFFIX_*). */
  matchHashed(name: string, boundaries: number, port: number, exe: string | null): IndexedRule | null {
    if (this.nameCount === 0) return null;
    const list = this.exact.get(FULL_HASH[0]!);
    if (list) for (const r of list) if ((r.host as { name: string }).name === name && takes(r, port, exe)) return r;
    if (this.suffix.size === 0) return null;
    // Longest suffix first: the boundaries were recorded from the right, so the last is the longest.
    for (let k = boundaries - 1; k >= 0; k--) {
      const candidates = this.suffix.get(SUFFIX_HASH[k]!);
      if (!candidates) continue;
      const start = SUFFIX_START[k]!;
      for (const r of candidates) {
        const sfx = (r.host as { suffix: string }).suffix;
        if (sfx.length === name.length - start && name.endsWith(sfx) && takes(r, port, exe)) return r;
      }
    }
    return null;
  }

  /** The most specific address rule for the address whose prefix is at least `minLen`. */
  matchAddr(ip: IP, port: number, exe: string | null, minLen = 0): IndexedRule | null {
    if (ip.v === 4) {
      for (const len of this.v4Lens) {
        if (len < minLen) break;
        const list = this.v4[len]!.get(len === 0 ? 0 : ip.n & (0xffffffff << (32 - len)));
        if (list) {
          const r = pick(list, port, exe);
          if (r) return r;
        }
      }
      return null;
    }
    for (const len of this.v6Lens) {
      if (len < minLen) break;
      const list = this.v6[len]!.get(v6Key(ip.w, len));
      if (list) {
        for (const r of list) if (insideCidr((r.host as { cidr: Cidr }).cidr, ip) && takes(r, port, exe)) return r;
      }
    }
    return null;
  }
}

/**
 * The top `len` bits of an IPv6 address hashed to an int32 Map key (small integers hash fastest);
 * rules found under a key are checked against the address itself, so collisions cost nothing.
 */
function v6Key(w: readonly number[], len: number): number {
  let h = len;
  for (let i = 0; i < 4 && 32 * i < len; i++) h = Math.imul(h ^ (w[i]! & wordMask(len, 32 * i)), 0x9e3779b1);
  return h ^ (h >>> 15);
}

const FNV_OFFSET = 0x811c9dc5 | 0;

// hashName's results: the hash of each suffix that starts after a dot (all but the last label, so
// two labels or more: a wildcard over a TLD is refused), where it starts, and the whole name's.
const SUFFIX_HASH = new Int32Array(128);
const SUFFIX_START = new Int32Array(128);
const FULL_HASH = new Int32Array(1);

/**
 * One pass from the last character to the first, hashing as it goes (FNV-1a): at each dot the hash
 * is that of the suffix after it. Index lookups are then by number: no substring is made.
 * Returns how many suffixes were recorded.
 */
function hashName(name: string): number {
  let h = FNV_OFFSET;
  let dots = 0;
  let n = 0;
  for (let i = name.length - 1; i >= 0; i--) {
    const c = name.charCodeAt(i);
    if (c === 46 && ++dots > 1 && n < 128) {
      SUFFIX_HASH[n] = h;
      SUFFIX_START[n++] = i + 1;
    }
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  FULL_HASH[0] = h;
  return n;
}
const FNV_PRIME = 16777619;

/** FNV-1a over the characters from the last to the first, as matchName computes it (an int32: Map keys that are small integers hash fastest). */
function nameHash(s: string): number {
  let h = FNV_OFFSET;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h;
}

/** Whether the rule takes this port and this executable. */
function takes(r: IndexedRule, port: number, exe: string | null): boolean {
  if (!portsMatch(r.ports, port)) return false;
  if (r.globs === null) return true;
  if (exe === null) return false;
  const path = exe.endsWith(" (deleted)") ? exe.slice(0, -" (deleted)".length) : exe;
  for (const g of r.globs) if (g.match(path)) return true;
  return false;
}

function pick(list: readonly IndexedRule[], port: number, exe: string | null): IndexedRule | null {
  for (const r of list) if (takes(r, port, exe)) return r;
  return null;
}

/** What an address is for the guard: the address itself and, for IPv6 forms, the IPv4 it carries. */
interface AddrFacts {
  ip: IP;
  /** The address as given (any valid spelling of it); canonical text comes from formatIP(ip). */
  text: string;
  /** The IPv4 address carried by an IPv6 form, and the form. */
  v4: IP | null;
  form: string | null;
}

function facts(ip: IP, text: string): AddrFacts {
  if (ip.v === 6) {
    const c = carriedIPv4(ip.w);
    if (c) return { ip, text, v4: { v: 4, n: c.v4 }, form: c.form };
  }
  return { ip, text, v4: null, form: null };
}

export class Policy {
  readonly mode: Mode;
  readonly allow = new RuleIndex();
  readonly deny = new RuleIndex();
  readonly rules: readonly Rule[];
  private readonly ctx: PolicyContext;
  private hostV4 = new Set<number>();
  private hostV6: (readonly number[])[] = [];
  private hostAt = -1;

  constructor(rules: Rule[], mode: Mode, ctx: PolicyContext) {
    this.mode = mode;
    this.ctx = ctx;
    this.rules = rules;
    for (const r of rules) {
      const indexed: IndexedRule = {
        ...r,
        globs: r.exe === null ? null : r.exe.map((g) => new Bun.Glob(g)),
        label: `${r.action} ${r.text}${r.origin === null ? "" : ` (${r.origin})`}`,
      };
      (r.action === "allow" ? this.allow : this.deny).add(indexed);
    }
  }

  /** One line on what this policy is, for logs: mode and rule counts. */
  summary(): string {
    return `${this.mode}, ${this.allow.count} allow and ${this.deny.count} deny rules${this.allow.count === 0 ? " (no allow rule: everything the guard and deny rules do not refuse is allowed)" : " (deny by default)"}`;
  }

  private refreshHost(): void {
    const now = currentEpoch();
    if (now === this.hostAt) return;
    this.hostAt = now;
    const v4 = new Set<number>();
    const v6: (readonly number[])[] = [];
    for (const a of this.ctx.hostAddresses()) {
      const ip = parseIP(a.replace(/%.*$/, ""));
      if (!ip) continue;
      const f = facts(ip, a);
      if (f.v4) v4.add((f.v4 as { n: number }).n);
      else if (ip.v === 4) v4.add(ip.n);
      else v6.push(ip.w);
    }
    this.hostV4 = v4;
    this.hostV6 = v6;
  }

  private isHostAddress(f: AddrFacts): boolean {
    this.refreshHost();
    if (f.v4) return this.hostV4.has((f.v4 as { n: number }).n);
    if (f.ip.v === 4) return this.hostV4.has(f.ip.n);
    const w = f.ip.w;
    for (const h of this.hostV6) if (h[0] === w[0] && h[1] === w[1] && h[2] === w[2] && h[3] === w[3]) return true;
    return false;
  }

  private ok(rule: IndexedRule | null, reason: string): Verdict {
    return { allowed: true, outcome: "ok", rule: rule && rule.text, reason };
  }

  /** A refusal by a rule or the default: denied when enforcing, reported when auditing. */
  private refuse(rule: IndexedRule | null, reason: string): Verdict {
    return this.mode === "audit"
      ? { allowed: true, outcome: "would_deny", rule: rule && rule.text, reason }
      : { allowed: false, outcome: "denied", rule: rule && rule.text, reason };
  }

  private defaultVerdict(): Verdict {
    return this.allow.count === 0 ? this.ok(null, "default: no allow rules (the guard and deny rules alone decide)") : this.refuse(null, "default: no allow rule matched");
  }

  /** The guard by name alone: metadata names and localhost. */
  guardName(name: string): Verdict | null {
    if (METADATA_NAMES.has(name)) return guardVerdict(`guard: cloud metadata name ${name}`);
    if (isLocalhostName(name)) return guardVerdict(`guard: loopback name ${name}`);
    return null;
  }

  /** The guard's "never" rows, this host's addresses and the proxy's door. */
  private guardNever(f: AddrFacts, hit: GuardHit | null, port: number): Verdict | null {
    const own = this.isHostAddress(f);
    const local = own || (hit !== null && (hit.row.label === "loopback" || hit.row.label === "unspecified"));
    if (local && this.ctx.doorPort !== undefined && port === this.ctx.doorPort) return guardVerdict(`guard: the proxy's own door ${formatIP(f.ip)}:${port}`);
    if (hit && hit.row.kind === "never") return guardVerdict(guardReason(hit, f));
    if (own) return guardVerdict(`guard: an address of this host ${formatIP(f.ip)}`);
    return null;
  }

  /**
   * The whole decision for one address, reached by `name` (null for a literal address). Name
   * matches are passed in when the caller has them already (one lookup per name, not per address).
   */
  decideAddress(
    name: string | null,
    f: AddrFacts,
    port: number,
    exe: string | null,
    byName?: { deny: IndexedRule | null; allow: IndexedRule | null },
  ): Verdict {
    const rowIp = f.v4 ?? f.ip;
    const hit = guardRowOf(rowIp, f.v4 === null ? null : f.form);
    const never = this.guardNever(f, hit, port);
    if (never) return never;
    if (name !== null && byName === undefined) {
      const g = this.guardName(name);
      if (g) return g;
    }
    const nameDeny = byName ? byName.deny : name === null ? null : this.deny.matchName(name, port, exe);
    const deny = nameDeny ?? this.matchAddr(this.deny, f, port, exe, 0);
    if (deny) return this.refuse(deny, deny.label);
    if (hit) {
      // An "unless allowed" row: only an address rule inside the row lifts it.
      const r = this.allow.matchAddr(rowIp, port, exe, hit.cidr.len);
      if (r) return this.ok(r, r.label);
      return guardVerdict(`${guardReason(hit, f)}, unless a rule allows it by address or CIDR`);
    }
    if (this.allow.count === 0) return this.defaultVerdict();
    const allow = (byName ? byName.allow : name === null ? null : this.allow.matchName(name, port, exe)) ?? this.matchAddr(this.allow, f, port, exe, 0);
    return allow ? this.ok(allow, allow.label) : this.refuse(null, "default: no allow rule matched");
  }

  /** Address rules for the address, and for the IPv4 address an IPv6 form carries. */
  private matchAddr(idx: RuleIndex, f: AddrFacts, port: number, exe: string | null, minLen: number): IndexedRule | null {
    if (idx.addrCount === 0) return null;
    return (f.v4 && idx.matchAddr(f.v4, port, exe, minLen)) ?? idx.matchAddr(f.ip, port, exe, minLen);
  }

  /** A name decided by the rules alone (it did not resolve): guard names, name rules, default. */
  decideName(name: string, port: number, exe: string | null): Verdict {
    const g = this.guardName(name);
    if (g) return g;
    const deny = this.deny.matchName(name, port, exe);
    if (deny) return this.refuse(deny, deny.label);
    if (this.allow.count === 0) return this.defaultVerdict();
    const allow = this.allow.matchName(name, port, exe);
    return allow ? this.ok(allow, allow.label) : this.refuse(null, "default: no allow rule matched");
  }

  /**
   * The deny and allow rules that match the name. The last answer is kept: the proxy asks for the
   * same (name, port, exe) before and after resolving, and the policy never changes.
   */
  nameMatches(name: string, port: number, exe: string | null): NameMatches {
    const m = this.lastNames;
    if (m !== null && m.name === name && m.port === port && m.exe === exe) return m;
    const b = hashName(name);
    const r: NameMatches = { name, port, exe, deny: this.deny.matchHashed(name, b, port, exe), allow: this.allow.count === 0 ? null : this.allow.matchHashed(name, b, port, exe) };
    this.lastNames = r;
    return r;
  }
  private lastNames: NameMatches | null = null;
}

function guardVerdict(reason: string): Verdict {
  return { allowed: false, outcome: "denied", rule: null, reason };
}

function guardReason(hit: GuardHit, f: AddrFacts): string {
  const via = hit.via === null ? "" : ` (${formatIP(f.ip)} is the ${hit.via} form of ${formatIP(f.v4!)})`;
  return `guard: ${hit.row.label} ${formatCidr(hit.cidr)}${via}`;
}

/** Address text -> the facts the decision needs, or null. Valid IP text is kept as given. */
export function addrFacts(text: string): AddrFacts | null {
  let ip = parseIP(text);
  let canonical = text;
  if (ip === null) {
    const h = normaliseHost(text);
    if (!("addr" in h)) return null;
    ip = parseIP(h.addr);
    canonical = h.addr;
    if (ip === null) return null;
  }
  return facts(ip, canonical);
}

// ---- loading -----------------------------------------------------------------------------------

/** The "never" guard row (or metadata/localhost name) that a whole allow rule falls in, if any. */
function neverProblem(host: HostMatcher): string | null {
  if (host.kind === "name") {
    if (METADATA_NAMES.has(host.name)) return `${host.name} is a cloud metadata name, which the guard always refuses`;
    if (isLocalhostName(host.name)) return `${host.name} is loopback, which the guard always refuses`;
    return null;
  }
  if (host.kind === "suffix") return host.suffix === "localhost" ? "*.localhost is loopback, which the guard always refuses" : null;
  const c = host.cidr;
  const ip = c.ip.v === 6 ? carriedIPv4(c.ip.w) : null;
  const checkIp: IP = ip && c.len >= 96 ? { v: 4, n: ip.v4 } : c.ip;
  const checkLen = ip && c.len >= 96 ? c.len - 96 : c.len;
  for (const row of GUARD_ROWS) {
    if (row.kind !== "never") continue;
    for (const rc of row.cidrs) {
      if (rc.ip.v === checkIp.v && checkLen >= rc.len && insideCidr(rc, checkIp)) {
        return `${formatCidr(c)} is ${row.label} (${formatCidr(rc)}), which the guard always refuses`;
      }
    }
  }
  return null;
}

function insideCidr(c: Cidr, ip: IP): boolean {
  if (ip.v === 4) return c.ip.v === 4 && ((ip.n & wordMask(c.len, 0)) >>> 0) === c.ip.n;
  if (c.ip.v !== 6) return false;
  for (let i = 0; i < 4; i++) if (((ip.w[i]! & wordMask(c.len, 32 * i)) >>> 0) !== c.ip.w[i]) return false;
  return true;
}

function checkExe(globs: readonly string[]): string | null {
  for (const g of globs) {
    if (!g.startsWith("/") && !g.startsWith("*")) return `exe ${JSON.stringify(g)}: an executable is an absolute path or a glob such as /usr/bin/* or **/node`;
  }
  return null;
}

/** One --allow/--deny text or file entry -> a rule, or the problem. */
export function ruleFromEntry(e: RawEntry): Rule | string {
  const parsed = parseRule(e.host);
  if ("error" in parsed) return parsed.error;
  let ports = parsed.ports;
  let portsGiven = parsed.portsGiven;
  if (e.ports !== null) {
    if (parsed.portsGiven) return `ports given twice (in host and in ports)`;
    const p = parsePorts(e.ports);
    if (p !== null && "error" in p) return p.error;
    ports = p;
    portsGiven = true;
  }
  if (e.exe !== null) {
    const bad = checkExe(e.exe);
    if (bad) return bad;
  }
  if (e.action === "allow") {
    const never = neverProblem(parsed.host);
    if (never) return never;
  }
  const text = formatRule({ host: parsed.host, ports, portsGiven }) + (e.exe === null ? "" : ` exe=${e.exe.join(",")}`);
  return { action: e.action, host: parsed.host, ports: portsGiven ? ports : DEFAULT_PORTS, exe: e.exe, text, origin: e.file === null ? null : e.origin };
}

export function loadPolicy(o: PolicyOptions, ctx: PolicyContext): Policy | string {
  const entries: RawEntry[] = [];
  for (const [action, list] of [
    ["allow", o.allow],
    ["deny", o.deny],
  ] as const) {
    for (const text of list) entries.push({ action, origin: `--${action}`, file: null, where: `--${action}`, host: text, ports: null, exe: null });
  }
  for (const file of o.files) {
    const r = readPolicyFile(file);
    if (typeof r === "string") return r;
    entries.push(...r);
  }
  const rules: Rule[] = [];
  for (const e of entries) {
    const r = ruleFromEntry(e);
    if (typeof r === "string") {
      return `${e.file === null ? "" : `${e.file}: `}${e.where} ${JSON.stringify(e.host)}: ${r}`;
    }
    rules.push(r);
  }
  return new Policy(rules, o.mode, ctx);
}

export { formatPorts };
