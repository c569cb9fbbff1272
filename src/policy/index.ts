// What the proxy calls: load a policy once, decide each request before resolving (the name or the
// literal address) and after (every address the name resolved to; the proxy connects only to an
// address returned here, with no second lookup, so DNS rebinding cannot slip through).
import { type AddrFacts, normaliseOther, plainName, readAddr } from "./address.ts";
import type { Policy } from "./policy.ts";
import { type Verdict, guardVerdict } from "./verdict.ts";

export { normaliseHost } from "./address.ts";
export { loadPolicy } from "./load.ts";
export { Policy } from "./policy.ts";
export type { Mode, PolicyContext, PolicyOptions, Rule, Verdict } from "./policy.ts";

// The address being decided, one after another: deciding is synchronous and keeps none of them.
const FACTS: AddrFacts = { text: "", v: 4, n: 0, w0: 0, w1: 0, w2: 0, w3: 0, c4: -1, form: null };

/** What decideResolved allows when it allows nothing (most requests a policy sees are refused). */
const NONE: readonly string[] = Object.freeze([]);

function badHost(why: string): Verdict {
  return guardVerdict(`guard: bad host: ${why}`);
}

/**
 * Before resolving: a literal address (any numeric spelling) is decided here; a name is decided
 * here when the name alone decides (a guard name, and in enforce mode a deny rule, or no allow
 * rule that could match), else "resolve". In audit mode a name the rules refuse still needs its
 * addresses (it is connected to), so the answer is "resolve" and decideResolved reports would_deny.
 * A host that is neither a name nor an address is denied (kind "name", the text as given).
 */
export function decideTarget(
  p: Policy,
  host: string,
  port: number,
  exe: string | null,
): { kind: "address"; addr: string; verdict: Verdict } | { kind: "name"; name: string; verdict: Verdict | "resolve" } {
  // The common case, a plain name, without the object normaliseHost returns.
  const plain = plainName(host);
  if (plain !== null) return nameTarget(p, plain, port, exe);
  const h = normaliseOther(host);
  if ("error" in h) return { kind: "name", name: host, verdict: badHost(h.error) };
  if ("name" in h) return nameTarget(p, h.name, port, exe);
  readAddr(h.addr, FACTS);
  return { kind: "address", addr: h.addr, verdict: p.decideAddress(null, FACTS, port, exe) };
}

function nameTarget(p: Policy, name: string, port: number, exe: string | null): { kind: "name"; name: string; verdict: Verdict | "resolve" } {
  return { kind: "name", name, verdict: p.guardName(name) ?? p.decideBeforeResolving(name, port, exe) };
}

/**
 * After resolving `name`: each address is decided on its own (guard, deny rules, allow rules by
 * name or address). `allowed` holds the addresses the proxy may connect to, in order; the verdict
 * is the first allowed address's (an "ok" one before a "would_deny" one), or when none is allowed
 * the first address's refusal.
 */
export function decideResolved(p: Policy, name: string, addrs: readonly string[], port: number, exe: string | null): { verdict: Verdict; allowed: readonly string[] } {
  if (addrs.length === 0) return { verdict: guardVerdict(`${name} resolved to no address`), allowed: NONE };
  const g = p.guardName(name);
  if (g) return { verdict: g, allowed: NONE };
  let ok: Verdict | null = null;
  let would: Verdict | null = null;
  let denied: Verdict | null = null;
  let allowed: string[] | null = null;
  let wouldAddrs: string[] | null = null;
  const f = FACTS;
  for (let i = 0; i < addrs.length; i++) {
    if (!readAddr(addrs[i]!, f)) {
      denied ??= badHost(`${addrs[i]} is not an address`);
      continue;
    }
    const v = p.decideAddress(name, f, port, exe);
    if (v.outcome === "ok") {
      ok ??= v;
      (allowed ??= []).push(f.text);
    } else if (v.outcome === "would_deny") {
      would ??= v;
      (wouldAddrs ??= []).push(f.text);
    } else denied ??= v;
  }
  if (ok !== null) return { verdict: ok, allowed: allowed! };
  if (would !== null) return { verdict: would, allowed: wouldAddrs! };
  return { verdict: denied!, allowed: NONE };
}
