// The policy options of the built-in proxy, shared by `run` (which enforces them) and `policy
// check` (which asks them), so both read the very same policy from the same words.
import type { ArgsDef } from "citty";
import { networkInterfaces } from "node:os";
import { loadPolicy, type Policy } from "../policy/index.ts";
import { usageError } from "../exit-codes.ts";

export const policyArgs = {
  allow: { type: "string", description: "let the proxy serve HOST[:PORTS] (a name, *.suffix, an address or a CIDR; ports 80,443 by default); repeatable; any allow rule makes the rest denied", valueHint: "RULE" },
  deny: { type: "string", description: "refuse HOST[:PORTS]; repeatable; deny wins over allow", valueHint: "RULE" },
  policy: { type: "string", description: "a policy file (YAML or JSON) of allow and deny entries, optionally per executable; repeatable", valueHint: "FILE" },
  "policy-mode": { type: "string", description: "enforce, or audit: serve what only the rules refuse and report it as would_deny (the guard always refuses)", default: "enforce", valueHint: "enforce|audit" },
} as const satisfies ArgsDef;

/** Every value a repeatable option was given, in order (citty keeps only the last). */
export function allValues(rawArgs: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === `--${name}` && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

/** The addresses of proxywall's own namespace's interfaces: the guard refuses every one. */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, "")));
}

/** The policy the options describe; a bad rule or file is a usage error naming what is wrong. */
export function policyFrom(rawArgs: readonly string[], mode: unknown, doorPort?: number): Policy {
  if (mode !== "enforce" && mode !== "audit") throw usageError("--policy-mode: must be enforce or audit");
  const p = loadPolicy(
    { allow: allValues(rawArgs, "allow"), deny: allValues(rawArgs, "deny"), files: allValues(rawArgs, "policy"), mode },
    { hostAddresses: ownAddresses, ...(doorPort === undefined ? {} : { doorPort }) },
  );
  if (typeof p === "string") throw usageError(p);
  return p;
}
