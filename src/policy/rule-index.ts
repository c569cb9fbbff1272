// The allow and deny rules indexed for the hot path: exact names and `*.suffix` wildcards in
// tables that compare the request's name in place (both actions in one table, so one walk over
// the name's labels answers for deny and allow), CIDRs in one Map per prefix length per action,
// each behind a bit filter that answers the common miss. A rule carries what deciding
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

/**
 * One bit per 16-bit key, in front of a Map: most lookups miss (most addresses match no rule at
 * most prefix lengths, most names no rule), and a bit says so in a few instructions, where a Map
 * lookup costs 15-20 ns. Keys that pass are looked up in the Map, which has the last word.
 */
class Bits16 {
  private readonly words = new Int32Array(2048);

  set(key: number): void {
    this.words[key >>> 5]! |= 1 << (key & 31);
  }

  has(key: number): boolean {
    return (this.words[key >>> 5]! & (1 << (key & 31))) !== 0;
  }
}

/** The filter bit of an IPv4 key: the masked address (int32) and its prefix length, mixed. */
function v4Bit(masked: number, len: number): number {
  return Math.imul(masked + len, 0x9e3779b1) >>> 16;
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
  addrCount = 0;
  /** Per prefix length 0..32: masked address (int32) -> rules; `v4Lens` lists the lengths used, longest first. */
  private readonly v4: Map<number, IndexedRule[]>[] = [];
  private v4Lens: number[] = [];
  private readonly v6: Map<number, IndexedRule[]>[] = [];
  private v6Lens: number[] = [];
  /** The low 16 bits of every key above (both families, every length). */
  private readonly bits = new Bits16();

  add(r: IndexedRule): void {
    this.count++;
    if (r.cidr === null) return;
    this.addrCount++;
    const { ip, len } = r.cidr;
    if (ip.v === 4) {
      push((this.v4[len] ??= new Map()), ip.n | 0, r); // int32 keys, as matchV4 computes them
      this.bits.set(v4Bit(ip.n | 0, len));
      if (!this.v4Lens.includes(len)) this.v4Lens = [...this.v4Lens, len].sort((a, b) => b - a);
    } else {
      const key = v6Key(ip.w[0], ip.w[1], ip.w[2], ip.w[3], len);
      push((this.v6[len] ??= new Map()), key, r);
      this.bits.set(key & 0xffff);
      if (!this.v6Lens.includes(len)) this.v6Lens = [...this.v6Lens, len].sort((a, b) => b - a);
    }
  }

  /** The most specific rule for an IPv4 address (unsigned) whose prefix is at least `minLen`. */
  matchV4(n: number, port: number, exe: string | null, minLen: number): IndexedRule | null {
    const lens = this.v4Lens;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      if (len < minLen) break;
      const masked = len === 0 ? 0 : n & (-1 << (32 - len));
      if (!this.bits.has(v4Bit(masked, len))) continue;
      const list = this.v4[len]!.get(masked);
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
      const key = v6Key(w0, w1, w2, w3, len);
      if (!this.bits.has(key & 0xffff)) continue;
      const list = this.v6[len]!.get(key);
      if (list === undefined) continue;
      for (let j = 0; j < list.length; j++) {
        const r = list[j]!;
        if (insideV6(r.cidr!, w0, w1, w2, w3) && takes(r, port, exe)) return r;
      }
    }
    return null;
  }
}

/** A name of a rule (exact, or a wildcard's suffix) and the rules that have it. */
interface NameEntry {
  text: string;
  rules: IndexedRule[];
}

/**
 * Names under a 16-bit key of their length and four of their characters, so that a lookup neither
 * makes a substring nor hashes one: the request's name is compared in place (a suffix with
 * endsWith). A Map lookup by a substring of the name (what a plain Map of names needs for each
 * suffix) cost a sixth of a whole decision, and hashing the name character by character in
 * JavaScript costs about 20 ns a character without JavaScriptCore's optimizing tiers (how
 * proxywall runs). A bit per key answers the common miss before the Map is asked.
 */
class NameTable {
  private readonly bits = new Bits16();
  private readonly byKey = new Map<number, NameEntry[]>();
  size = 0;

  /**
   * The key of the text of `s` from `start` on: its length and four of its characters, the first
   * two and those in the middle and near the end (names that share a prefix such as "api." or
   * "www." differ there). Only characters of the text itself are read (a suffix shorter than five
   * would otherwise see the dot before it, which the rule's own text does not have); NaN past the
   * end counts as 0, alike for both sides.
   */
  private static key(s: string, start: number): number {
    const len = s.length - start;
    let h = Math.imul(len ^ (s.charCodeAt(start) << 8) ^ (s.charCodeAt(start + 1) << 16), 0x9e3779b1);
    h = Math.imul(h ^ s.charCodeAt(start + (len >> 1)) ^ (s.charCodeAt(start + Math.max(0, len - 5)) << 8), 0x85ebca6b);
    return (h ^ (h >>> 16)) & 0xffff;
  }

  add(text: string, r: IndexedRule): void {
    const k = NameTable.key(text, 0);
    this.bits.set(k);
    let list = this.byKey.get(k);
    if (list === undefined) this.byKey.set(k, (list = []));
    const e = list.find((x) => x.text === text);
    if (e) e.rules.push(r);
    else {
      list.push({ text, rules: [r] });
      this.size++;
    }
  }

  /** The rules of the name that is `s` from `start` to its end, or undefined. */
  get(s: string, start: number): IndexedRule[] | undefined {
    const k = NameTable.key(s, start);
    if (!this.bits.has(k)) return undefined;
    const list = this.byKey.get(k)!;
    const len = s.length - start;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.text.length === len && (start === 0 ? s === e.text : s.endsWith(e.text))) return e.rules;
    }
    return undefined;
  }
}

/** Exact-name and wildcard rules of both actions; `match` sets `deny` and `allow`. */
export class NameIndex {
  private readonly exact = new NameTable();
  private readonly suffix = new NameTable();
  private size = 0;
  /** match's answer: the most specific deny and allow rules (exact, then the longest suffix). */
  deny: IndexedRule | null = null;
  allow: IndexedRule | null = null;

  add(r: IndexedRule): void {
    this.size++;
    (r.host.kind === "name" ? this.exact : this.suffix).add(r.nameText, r);
  }

  /**
   * Sets `deny` and `allow` for the name: for each action the first rule (in the order given) of
   * the exact name, else of the longest matching suffix, that takes the port and executable.
   */
  match(name: string, port: number, exe: string | null): void {
    this.deny = null;
    this.allow = null;
    if (this.size === 0) return;
    const exact = this.exact.get(name, 0);
    if (exact !== undefined) this.take(exact, port, exe);
    if (this.suffix.size === 0) return;
    // Longest first: the suffix after each dot but the last (a wildcard over a TLD is refused).
    const last = name.lastIndexOf(".");
    for (let dot = name.indexOf("."); dot !== -1 && dot < last && (this.deny === null || this.allow === null); dot = name.indexOf(".", dot + 1)) {
      const list = this.suffix.get(name, dot + 1);
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
