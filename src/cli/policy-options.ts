// The policy options on the command line, shared by `run` (which enforces them) and `policy check`
// (which asks them), so both read the very same policy from the same words: `--allow RULE` and
// `--deny RULE` (repeatable), `--policy FILE` (repeatable), and `--policy-mode enforce|audit`.
// citty keeps only the last of a repeated option, so the repeatable ones are read from the raw
// arguments.
import type { ArgsDef } from "citty";
import { networkInterfaces } from "node:os";
import * as v from "valibot";
import { usageError } from "../exit-codes.ts";
import { validate } from "./argv.ts";
import { loadPolicy, type Policy, type PolicyOptions } from "../policy/index.ts";

export const policyArgs = {
  allow: { type: "string", description: "allow HOST[:PORTS] (repeatable): a name, *.suffix, an IP or a CIDR; PORTS 443, 80,443 or 8000-8100 (default 80 and 443). Any allow rule makes the policy deny by default" },
  deny: { type: "string", description: "deny HOST[:PORTS] (repeatable); deny wins over allow" },
  policy: { type: "string", description: "a policy file, YAML or JSON, with allow: and deny: lists (repeatable)" },
  "policy-mode": { type: "string", description: "enforce (default), or audit: allow what the guard allows and report what enforce would deny (outcome would_deny)" },
} as const satisfies ArgsDef;

/** Every value of a repeatable option, in order: `--name VALUE` and `--name=VALUE`. */
export function repeated(rawArgs: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === `--${name}`) {
      if (i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    } else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

const Mode = v.optional(v.picklist(["enforce", "audit"], "must be enforce or audit"), "enforce");

/** The policy options from a command's raw arguments; a bad mode is a usage error (exit 2). */
export function policyOptionsFromArgv(rawArgs: readonly string[]): PolicyOptions {
  const modes = repeated(rawArgs, "policy-mode");
  if (modes.length > 1) throw usageError("--policy-mode given more than once");
  const mode = validate(v.object({ policyMode: Mode }), { policyMode: modes[0] }).policyMode;
  return { allow: repeated(rawArgs, "allow"), deny: repeated(rawArgs, "deny"), files: repeated(rawArgs, "policy"), mode };
}

/** The addresses of this network namespace's interfaces, as the guard's "this host" row. */
export function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

/** The policy the options describe; a bad rule or file is a usage error naming what is wrong. */
export function policyFrom(rawArgs: readonly string[], doorPort?: number): Policy {
  const p = loadPolicy(policyOptionsFromArgv(rawArgs), { hostAddresses: interfaceAddresses, ...(doorPort === undefined ? {} : { doorPort }) });
  if (typeof p === "string") throw usageError(p);
  return p;
}
