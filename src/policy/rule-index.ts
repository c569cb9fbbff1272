// The allow and deny rules indexed for the hot path: exact names and `*.suffix` wildcards in Maps
// keyed by the name (both actions in one Map, so one walk over the name's labels answers for deny
// and allow), CIDRs in one Map per prefix length per action. A rule carries what deciding
// needs, made once: its verdict, its ports as flat ranges, its executable globs compiled.
import type { Cidr } from "./address.ts";
import type { HostMatcher, PortSet } from "./rules.ts";
import type { Verdict } from "./verdict.ts";

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

export interface IndexedRule extends Rule {
  deny: boolean;
  /** The verdict this rule gives when it decides (ok for allow; denied or would_deny for deny). */
  verdict: Verdict;
  /** Port ranges as lo, hi, lo, hi, ...; null for every port. */
  portRanges: Int32Array | null;
  globs: readonly Bun.Glob[] | null;
  /** The exact name, or the suffix of a wildcard (the name index compares it with the request's). */
  nameText: string;
  /** A CIDR rule's block. */
  cidr: Cidr | null;
}

const DELETED = " (deleted)";

/** Whether the rule takes this port and this executable. */
export function takes(r: IndexedRule, port: number, exe: string | null): boolean {
  const pr = r.portRanges;
  if (pr !== null) {
    let i = 0;
    while (i < pr.length && !(port >= pr[i]! && port <= pr[i + 1]!)) i += 2;
    if (i === pr.length) return false;
  }
  const globs = r.globs;
  if (globs === null) return true;
  if (exe === null) return false;
  const path = exe.endsWith(DELETED) ? exe.slice(0, -DELETED.length) : exe;
  for (let i = 0; i < globs.length; i++) if (globs[i]!.match(path)) return true;
  return false;
}

function push<K>(m: Map<K, IndexedRule[]>, k: K, r: IndexedRule): void {
  const list = m.get(k);
  if (list) list.push(r);
  else m.set(k, [r]);
}

/** The mask of a prefix length within the 32-bit word that starts at bit `start`, as int32. */
function mask32(len: number, start: number): number {
  const bits = len - start;
  return bits <= 0 ? 0 : bits >= 32 ? -1 : -1 << (32 - bits);
}

/** Per IPv6 prefix length, the mask of each of the four words (int32). */
const V6_MASKS: Int32Array[] = Array.from({ length: 129 }, (_, len) => Int32Array.from([0, 32, 64, 96], (s) => mask32(len, s)));

/**
 * The top `len` bits of an IPv6 address hashed to an int32 Map key (small integers hash fastest);
 * rules found under a key are checked against the address itself, so collisions cost nothing.
 */
function v6Key(w0: number, w1: number, w2: number, w3: number, len: number): number {
  const m = V6_MASKS[len]!;
  let h = Math.imul(len ^ (w0 & m[0]!), 0x9e3779b1);
  if (len > 32) h = Math.imul(h ^ (w1 & m[1]!), 0x9e3779b1);
  if (len > 64) h = Math.imul(h ^ (w2 & m[2]!), 0x9e3779b1);
  if (len > 96) h = Math.imul(h ^ (w3 & m[3]!), 0x9e3779b1);
  return h ^ (h >>> 15);
}

function insideV6(c: Cidr, w0: number, w1: number, w2: number, w3: number): boolean {
  const m = V6_MASKS[c.len]!;
  const cw = (c.ip as { w: readonly number[] }).w;
  return (w0 & m[0]!) === (cw[0]! | 0) && (w1 & m[1]!) === (cw[1]! | 0) && (w2 & m[2]!) === (cw[2]! | 0) && (w3 & m[3]!) === (cw[3]! | 0);
}

function firstTaking(list: readonly IndexedRule[], port: number, exe: string | null): IndexedRule | null {
  for (let i = 0; i < list.length; i++) if (takes(list[i]!, port, exe)) return list[i]!;
  return null;
}

/** One action's rules: how many, and its address rules by prefix length, longest first. */
export class RuleIndex {
  count = 0;
  nameCount = 0;
  addrCount = 0;
  /** Per prefix length 0..32: masked address (int32) -> rules; `v4Lens` lists the lengths used, longest first. */
  private readonly v4: Map<number, IndexedRule[]>[] = [];
  private v4Lens: number[] = [];
  private readonly v6: Map<number, IndexedRule[]>[] = [];
  private v6Lens: number[] = [];

  add(r: IndexedRule): void {
    this.count++;
    if (r.cidr === null) {
      this.nameCount++;
      return;
    }
    this.addrCount++;
    const { ip, len } = r.cidr;
    if (ip.v === 4) {
      push((this.v4[len] ??= new Map()), ip.n | 0, r); // int32 keys, as matchV4 computes them
      if (!this.v4Lens.includes(len)) this.v4Lens = [...this.v4Lens, len].sort((a, b) => b - a);
    } else {
      push((this.v6[len] ??= new Map()), v6Key(ip.w[0], ip.w[1], ip.w[2], ip.w[3], len), r);
      if (!this.v6Lens.includes(len)) this.v6Lens = [...this.v6Lens, len].sort((a, b) => b - a);
    }
  }

  /** The most specific rule for an IPv4 address (unsigned) whose prefix is at least `minLen`. */
  matchV4(n: number, port: number, exe: string | null, minLen: number): IndexedRule | null {
    const lens = this.v4Lens;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      if (len < minLen) break;
      const list = this.v4[len]!.get(len === 0 ? 0 : n & (-1 << (32 - len)));
      if (list !== undefined) {
        const r = firstTaking(list, port, exe);
        if (r !== null) return r;
      }
    }
    return null;
  }

  /** The most specific rule for an IPv6 address (four unsigned words) whose prefix is at least `minLen`. */
  matchV6(w0: number, w1: number, w2: number, w3: number, port: number, exe: string | null, minLen: number): IndexedRule | null {
    const lens = this.v6Lens;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      if (len < minLen) break;
      const list = this.v6[len]!.get(v6Key(w0, w1, w2, w3, len));
      if (list === undefined) continue;
      for (let j = 0; j < list.length; j++) {
        const r = list[j]!;
        if (insideV6(r.cidr!, w0, w1, w2, w3) && takes(r, port, exe)) return r;
      }
    }
    return null;
  }
}

/**
 * A 65,536-bit filter of the length and first two characters of every key of a name Map. Most
 * lookups miss, and this says so without making a substring or hashing one: a Map lookup by a
 * substring of the name cost a sixth of a whole decision, and hashing the name character by
 * character in JavaScript costs about 20 ns a character without JavaScriptCore's optimizing tiers
 * (how proxywall runs). Keys that pass are looked up in the Map, which has the last word.
 */
class KeyFilter {
  private readonly bits = new Int32Array(2048);

  /** The filter's bit for the text of `s` from `start` on (NaN past the end counts as 0, alike for both). */
  private static bit(s: string, start: number): number {
    return (Math.imul(s.length - start, 0x9e3779b1) ^ (s.charCodeAt(start) << 8) ^ s.charCodeAt(start + 1)) & 0xffff;
  }

  add(key: string): void {
    const b = KeyFilter.bit(key, 0);
    this.bits[b >>> 5]! |= 1 << (b & 31);
  }

  mayHold(s: string, start: number): boolean {
    const b = KeyFilter.bit(s, start);
    return (this.bits[b >>> 5]! & (1 << (b & 31))) !== 0;
  }
}

/** Exact-name and wildcard rules of both actions; `match` sets `deny` and `allow`. */
export class NameIndex {
  private readonly exact = new Map<string, IndexedRule[]>();
  private readonly suffix = new Map<string, IndexedRule[]>();
  private readonly exactFilter = new KeyFilter();
  private readonly suffixFilter = new KeyFilter();
  private size = 0;
  /** match's answer: the most specific deny and allow rules (exact, then the longest suffix). */
  deny: IndexedRule | null = null;
  allow: IndexedRule | null = null;

  add(r: IndexedRule): void {
    this.size++;
    const exact = r.host.kind === "name";
    push(exact ? this.exact : this.suffix, r.nameText, r);
    (exact ? this.exactFilter : this.suffixFilter).add(r.nameText);
  }

  /**
   * Sets `deny` and `allow` for the name: for each action the first rule (in the order given) of
   * the exact name, else of the longest matching suffix, that takes the port and executable.
   */
  match(name: string, port: number, exe: string | null): void {
    this.deny = null;
    this.allow = null;
    if (this.size === 0) return;
    if (this.exactFilter.mayHold(name, 0)) {
      const exact = this.exact.get(name);
      if (exact !== undefined) this.take(exact, port, exe);
    }
    if (this.suffix.size === 0) return;
    // Longest first: the suffix after each dot but the last (a wildcard over a TLD is refused).
    const last = name.lastIndexOf(".");
    for (let dot = name.indexOf("."); dot !== -1 && dot < last && (this.deny === null || this.allow === null); dot = name.indexOf(".", dot + 1)) {
      if (!this.suffixFilter.mayHold(name, dot + 1)) continue;
      const list = this.suffix.get(name.slice(dot + 1));
      if (list !== undefined) this.take(list, port, exe);
    }
  }

  /** The first rule of each action not found yet that takes the port and executable. */
  private take(list: readonly IndexedRule[], port: number, exe: string | null): void {
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      if (r.deny ? this.deny !== null : this.allow !== null) continue;
      if (!takes(r, port, exe)) continue;
      if (r.deny) this.deny = r;
      else this.allow = r;
    }
  }
}
