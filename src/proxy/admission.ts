// Whether the proxy serves a request, and where it may connect: the policy's verdict on the name
// (and on the program that asks: exe rules), the name resolved once, the verdict on every address
// it gave, and for a tunnel the verdict on the server name its TLS ClientHello asks for.
import { decideResolved, decideTarget, type Policy, type Verdict } from "../policy/index.ts";
import type { Admission, Admit } from "./connection.ts";
import { resolveRefusal } from "./refusals.ts";
import type { FirstBytes } from "./tls-sni.ts";
import { resolveAll } from "./resolve.ts";

function refused(p: Policy, rule: string, reason: string): Verdict {
  const audit = p.mode === "audit";
  return { allowed: audit, outcome: audit ? "would_deny" : "denied", rule, reason };
}

export function policyAdmission(p: Policy, resolve: (name: string) => Promise<string[]> = resolveAll): Admit {
  return async (target, process) => {
    const exe = process?.resolved ? process.exe : null;
    const t = decideTarget(p, target.host, target.port, exe);
    const admit = (verdict: Verdict, addrs: readonly string[], sniFor: string | null): Admission => ({ verdict, addrs, checkHello: (first) => checkHello(p, first, sniFor, target.port, exe) });
    if (t.kind === "address") return admit(t.verdict, t.verdict.allowed ? [t.addr] : [], null);
    if (t.verdict !== "resolve" && !t.verdict.allowed) return admit(t.verdict, [], t.name);
    let addrs: string[];
    try {
      addrs = await resolve(t.name);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return resolveRefusal(err.code, t.name, err.message);
    }
    const r = decideResolved(p, t.name, addrs, target.port, exe);
    return admit(r.verdict, r.allowed, t.name);
  };
}

/**
 * A tunnel's first bytes: a ClientHello for another server than the CONNECT host (domain
 * fronting), or, when the CONNECT named an address, for a server the rules refuse, is refused
 * before any byte reaches the upstream. `name` is the CONNECT host when it was a name.
 */
function checkHello(p: Policy, first: FirstBytes, name: string | null, port: number, exe: string | null): Verdict | null {
  if (first.kind === "not-tls" || first.kind === "more") return null;
  if (first.kind === "malformed") return refused(p, "guard: TLS ClientHello", `the tunnel's TLS ClientHello cannot be read (${first.why})`);
  const sni = first.sni;
  if (sni === null) return null;
  if (name !== null) return sni === name ? null : refused(p, "guard: TLS server name", `the TLS server name ${sni} differs from the CONNECT host ${name}`);
  const t = decideTarget(p, sni, port, exe);
  if (t.kind === "name" && t.verdict !== "resolve" && !t.verdict.allowed) return { ...t.verdict, reason: `the TLS server name ${sni}: ${t.verdict.reason}` };
  if (t.kind === "name" && t.verdict !== "resolve" && t.verdict.outcome === "would_deny") return t.verdict;
  return null;
}
