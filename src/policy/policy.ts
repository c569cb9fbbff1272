// The policy: the guard, and the allow and deny rules (indexed in rule-index.ts), and the decisions
// the proxy asks for. Deciding allocates only what the answer must hold: verdicts that do not name
// the address are made once (per rule, per guard row, the defaults) and shared.
import { type AddrFacts, factsIP, formatIP } from "./address.ts";
import { type GuardEntry, METADATA_NAMES, guardEntryV4, guardEntryV6, isLocalhostName } from "./guard.ts";
import { HostAddresses } from "./host-addresses.ts";
import { type IndexedRule, NameIndex, type Rule, RuleIndex } from "./rule-index.ts";
import { type Mode, type Verdict, allowVerdict, guardVerdict, refuseVerdict } from "./verdict.ts";

export type { Mode, Verdict } from "./verdict.ts";
export type { Rule } from "./rule-index.ts";

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

function portRanges(r: Rule): Int32Array | null {
  return r.ports === null ? null : Int32Array.from(r.ports.flat());
}

export class Policy {
  readonly mode: Mode;
  readonly allow = new RuleIndex();
  readonly deny = new RuleIndex();
  readonly rules: readonly Rule[];
  private readonly names = new NameIndex();
  private readonly host: HostAddresses;
  private readonly doorPort: number;
  private readonly noAllowRules: Verdict;
  private readonly noAllowMatched: Verdict;
  // The last name's matches: the proxy asks for the same (name, port, exe) before and after resolving.
  private lastName: string | null = null;
  private lastPort = 0;
  private lastExe: string | null = null;
  private lastDeny: IndexedRule | null = null;
  private lastAllow: IndexedRule | null = null;

  constructor(rules: Rule[], mode: Mode, ctx: PolicyContext) {
    this.mode = mode;
    this.rules = rules;
    this.host = new HostAddresses(ctx.hostAddresses);
    this.doorPort = ctx.doorPort ?? -1;
    this.noAllowRules = allowVerdict(null, "default: no allow rules (the guard and deny rules alone decide)");
    this.noAllowMatched = refuseVerdict(mode, null, "default: no allow rule matched");
    for (const r of rules) {
      const deny = r.action === "deny";
      const label = `${r.action} ${r.text}${r.origin === null ? "" : ` (${r.origin})`}`;
      const h = r.host;
      // Every field named, in one order: rules come from flags and files with their fields in
      // different orders, and objects of one shape keep the hot path's property reads monomorphic.
      const indexed: IndexedRule = {
        action: r.action,
        host: r.host,
        ports: r.ports,
        exe: r.exe,
        text: r.text,
        origin: r.origin,
        deny,
        verdict: deny ? refuseVerdict(mode, r.text, label) : allowVerdict(r.text, label),
        portRanges: portRanges(r),
        globs: r.exe === null ? null : r.exe.map((g) => new Bun.Glob(g)),
        nameText: h.kind === "name" ? h.name : h.kind === "suffix" ? h.suffix : "",
        cidr: h.kind === "cidr" ? h.cidr : null,
      };
      (deny ? this.deny : this.allow).add(indexed);
      if (indexed.cidr === null) this.names.add(indexed);
    }
  }

  /** One line on what this policy is, for logs: mode and rule counts. */
  summary(): string {
    return `${this.mode}, ${this.allow.count} allow and ${this.deny.count} deny rules${this.allow.count === 0 ? " (no allow rule: everything the guard and deny rules do not refuse is allowed)" : " (deny by default)"}`;
  }

  /** The guard by name alone: metadata names and localhost. */
  guardName(name: string): Verdict | null {
    if (METADATA_NAMES.has(name)) return guardVerdict(`guard: cloud metadata name ${name}`);
    if (isLocalhostName(name)) return guardVerdict(`guard: loopback name ${name}`);
    return null;
  }

  /** The deny and allow name rules for the name, into lastDeny and lastAllow (the last answer is kept). */
  matchName(name: string, port: number, exe: string | null): void {
    if (name === this.lastName && port === this.lastPort && exe === this.lastExe) return;
    this.names.match(name, port, exe);
    this.lastName = name;
    this.lastPort = port;
    this.lastExe = exe;
    this.lastDeny = this.names.deny;
    this.lastAllow = this.names.allow;
  }

  /**
   * Before resolving a name (not a guard name: the caller asked): its verdict when the name alone
   * decides (in enforce mode a deny rule, or no allow rule that could match), else "resolve". In
   * audit mode a name the rules refuse is still connected to, so its addresses are needed.
   */
  decideBeforeResolving(name: string, port: number, exe: string | null): Verdict | "resolve" {
    if (this.mode === "audit") return "resolve";
    this.matchName(name, port, exe);
    if (this.lastDeny !== null) return this.lastDeny.verdict;
    // Deny by default, no name rule allows it, and no address rule could: no need to resolve.
    if (this.allow.count > 0 && this.lastAllow === null && this.allow.addrCount === 0) return this.noAllowMatched;
    return "resolve";
  }

  /** A name decided by the rules alone (it did not resolve): guard names, name rules, default. */
  decideName(name: string, port: number, exe: string | null): Verdict {
    const g = this.guardName(name);
    if (g) return g;
    this.matchName(name, port, exe);
    if (this.lastDeny !== null) return this.lastDeny.verdict;
    if (this.allow.count === 0) return this.noAllowRules;
    return this.lastAllow !== null ? this.lastAllow.verdict : this.noAllowMatched;
  }

  /**
   * The whole decision for one address: a literal one (`name` null), or one that `name` resolved
   * to (the guard by name is the caller's; the name's rules are matched here, once per name).
   */
  decideAddress(name: string | null, f: AddrFacts, port: number, exe: string | null): Verdict {
    const carried = f.c4 >= 0;
    // The guard row, of the IPv4 address an IPv6 form carries, else of the address itself.
    const hit = carried || f.v === 4 ? guardEntryV4(carried ? f.c4 : f.n) : guardEntryV6(f.w0, f.w1, f.w2, f.w3);
    const never = this.guardNever(f, hit, port);
    if (never !== null) return never;
    let nameDeny: IndexedRule | null = null;
    let nameAllow: IndexedRule | null = null;
    if (name !== null) {
      this.matchName(name, port, exe);
      nameDeny = this.lastDeny;
      nameAllow = this.lastAllow;
    }
    const deny = nameDeny ?? this.matchAddr(this.deny, f, port, exe, 0);
    if (deny !== null) return deny.verdict;
    if (hit !== null) {
      // An "unless allowed" row: only an address rule inside the row lifts it.
      const len = hit.cidr.len;
      const r = carried || f.v === 4 ? this.allow.matchV4(carried ? f.c4 : f.n, port, exe, len) : this.allow.matchV6(f.w0, f.w1, f.w2, f.w3, port, exe, len);
      if (r !== null) return r.verdict;
      return carried ? guardVerdict(`${guardReason(hit, f)}, unless a rule allows it by address or CIDR`) : hit.verdict;
    }
    if (this.allow.count === 0) return this.noAllowRules;
    const allow = nameAllow ?? this.matchAddr(this.allow, f, port, exe, 0);
    return allow !== null ? allow.verdict : this.noAllowMatched;
  }

  /** The guard's "never" rows, this host's addresses and the proxy's door. */
  private guardNever(f: AddrFacts, hit: GuardEntry | null, port: number): Verdict | null {
    const host = this.host;
    host.refresh();
    const own = f.c4 >= 0 ? host.hasV4(f.c4) : f.v === 4 ? host.hasV4(f.n) : host.hasV6(f.w0, f.w1, f.w2, f.w3);
    if (port === this.doorPort && (own || (hit !== null && hit.local))) return guardVerdict(`guard: the proxy's own door ${formatIP(factsIP(f))}:${port}`);
    if (hit !== null && hit.never) return f.c4 >= 0 ? guardVerdict(guardReason(hit, f)) : hit.verdict;
    if (own) return guardVerdict(`guard: an address of this host ${formatIP(factsIP(f))}`);
    return null;
  }

  /** Address rules for the address: for an IPv6 form, those for the IPv4 address it carries first. */
  private matchAddr(idx: RuleIndex, f: AddrFacts, port: number, exe: string | null, minLen: number): IndexedRule | null {
    if (idx.addrCount === 0) return null;
    if (f.v === 4) return idx.matchV4(f.n, port, exe, minLen);
    return (f.c4 >= 0 ? idx.matchV4(f.c4, port, exe, minLen) : null) ?? idx.matchV6(f.w0, f.w1, f.w2, f.w3, port, exe, minLen);
  }
}

/** `guard: private 10.0.0.0/8 (::ffff:10.1.2.3 is the IPv4-mapped form of 10.1.2.3)`. */
function guardReason(hit: GuardEntry, f: AddrFacts): string {
  return `${hit.reason} (${formatIP(factsIP(f))} is the ${f.form} form of ${formatIP({ v: 4, n: f.c4 })})`;
}
