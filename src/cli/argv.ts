// The edge between argv and validated config: proxywall's own arguments end at the first "--"
// (citty would otherwise take `run -- CMD --help` as a help request), unknown flags are errors,
// and every value passes a valibot schema before any code acts on it.
import type { ArgsDef } from "citty";
import * as v from "valibot";
import { canonicalIPv6, isIPv4 } from "../net/ip-address.ts";
import { usageError } from "../exit-codes.ts";

/** What a subcommand's run() finds in citty's `data`: the arguments after "--" (the sandboxed command). */
export interface CliData {
  passthrough: string[] | null;
}

export interface SplitArgv {
  own: string[];
  /** Everything after the first "--", or null when there was none. */
  rest: string[] | null;
}

export function splitAtDoubleDash(argv: readonly string[]): SplitArgv {
  const i = argv.indexOf("--");
  return i === -1 ? { own: [...argv], rest: null } : { own: argv.slice(0, i), rest: argv.slice(i + 1) };
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Rejects flags the command does not define (citty itself ignores them). */
export function checkFlags(args: ArgsDef, rawArgs: readonly string[]): void {
  const valued = new Set<string>();
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const alias = "alias" in def ? def.alias : undefined;
    const names = [name, kebab(name), ...(alias === undefined ? [] : [alias].flat())];
    for (const n of names) {
      known.add(n);
      if (def.type === "boolean") known.add(`no-${n}`);
      else valued.add(n);
    }
  }
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (!a.startsWith("-") || a === "-") continue;
    const name = a.replace(/^--?/, "").split("=")[0]!;
    if (!known.has(name)) throw usageError(`unknown option ${a.split("=")[0]}`);
    if (valued.has(name) && !a.includes("=")) {
      if (i + 1 >= rawArgs.length) throw usageError(`option ${a} needs a value`);
      i++;
    }
  }
}

/** Validates parsed options against a schema; the first problem becomes one usage line. */
export function validate<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const path = issue.path?.map((p) => String((p as { key: unknown }).key)).join(".");
  throw usageError(path ? `--${kebab(path)}: ${issue.message}` : issue.message);
}

/** A decimal integer option in [min, max], given as text on the command line. */
export function intOption(min: number, max: number) {
  return v.pipe(
    v.string(),
    v.regex(/^\d{1,10}$/, "must be a whole number"),
    v.transform(Number),
    v.number(),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );
}

/** An `ADDRESS:PORT` option (`[ADDRESS]:PORT` for IPv6): the address in canonical form, the port. */
export const AddressPortOption = v.pipe(
  v.string(),
  v.regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, "must be ADDRESS:PORT ([ADDRESS]:PORT for IPv6)"),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const text = dataset.value;
    const at = text.lastIndexOf(":");
    const host = text.slice(0, at).replace(/^\[|\]$/g, "");
    const port = Number(text.slice(at + 1));
    const addr = isIPv4(host) ? host : canonicalIPv6(host);
    if (!addr) addIssue({ message: `${host} is not an IP address` });
    else if (port < 1 || port > 65535) addIssue({ message: "port must be from 1 to 65535" });
    else return { addr, port };
    return NEVER;
  }),
);
