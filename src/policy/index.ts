// What the proxy calls: load a policy once, decide each request before resolving (the name or the
// literal address) and after (every address the name resolved to; the proxy connects only to an
// address returned here, with no second lookup, so DNS rebinding cannot slip through).
import { normaliseHost } from "./address.ts";
import { type Policy, type Verdict, addrFacts } from "./policy.ts";

export { normaliseHost } from "./address.ts";
export { loadPolicy, Policy } from "./policy.ts";
export type { Mode, PolicyContext, PolicyOptions, Rule, Verdict } from "./policy.ts";

function badHost(why: string): Verdict {
  return { allowed: false, outcome: "denied", rule: null, reason: `guard: bad host: ${why}` };
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
  const h = normaliseHost(host);
  if ("error" in h) return { kind: "name", name: host, verdict: badHost(h.error) };
  if ("addr" in h) {
    const f = addrFacts(h.addr)!;
    return { kind: "address", addr: h.addr, verdict: p.decideAddress(null, f, port, exe) };
  }
  const name = h.name;
  const g = p.guardName(name);
  if (g) return { kind: "name", name, verdict: g };
  if (p.mode === "audit") return { kind: "name", name, verdict: "resolve" };
  const byName = p.nameMatches(name, port, exe);
  if (byName.deny) return { kind: "name", name, verdict: p.decideName(name, port, exe) };
  // Deny by default, no name rule allows it, and no address rule could: no need to resolve.
  if (p.allow.count > 0 && byName.allow === null && p.allow.addrCount === 0) return { kind: "name", name, verdict: p.decideName(name, port, exe) };
  return { kind: "name", name, verdict: "resolve" };
}

/**
 * After resolving `name`: each address is decided on its own (guard, deny rules, allow rules by
 * name or address). `allowed` holds the addresses the proxy may connect to, in order; the verdict
 * is the first allowed address's (an "ok" one before a "would_deny" one), or when none is allowed
 * the first address's refusal.
 */
export function decideResolved(p: Policy, name: string, addrs: string[], port: number, exe: string | null): { verdict: Verdict; allowed: string[] } {
  const allowed: string[] = [];
  if (addrs.length === 0) return { verdict: { allowed: false, outcome: "denied", rule: null, reason: `${name} resolved to no address` }, allowed };
  const g = p.guardName(name);
  if (g) return { verdict: g, allowed };
  const byName = p.nameMatches(name, port, exe);
  let ok: Verdict | null = null;
  let would: Verdict | null = null;
  let denied: Verdict | null = null;
  const wouldAddrs: string[] = [];
  for (const a of addrs) {
    const f = addrFacts(a);
    const v = f ? p.decideAddress(name, f, port, exe, byName) : badHost(`${a} is not an address`);
    if (v.outcome === "ok") {
      ok ??= v;
      allowed.push(f!.text);
    } else if (v.outcome === "would_deny") {
      would ??= v;
      wouldAddrs.push(f!.text);
    } else denied ??= v;
  }
  if (ok) return { verdict: ok, allowed };
  if (would) return { verdict: would, allowed: wouldAddrs };
  return { verdict: denied!, allowed };
}
