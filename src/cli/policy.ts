// `proxywall policy check HOST[:PORT]`: the decision the proxy would make, and the rule or guard row
// that made it (exit 0 allowed, 1 denied), without root. `proxywall policy learn [EVENTS...]`: event
// lines in, a policy file out.
import { defineCommand } from "citty";
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { EXIT, usageError } from "../exit-codes.ts";
import { readInputText } from "../sys/input-file.ts";
import { decideResolved, decideTarget, loadPolicy, normaliseHost, type Policy, type Verdict } from "../policy/index.ts";
import { guardTable } from "../policy/guard.ts";
import { Learner } from "../policy/learn.ts";
import { interfaceAddresses, policyArgs, policyOptionsFromArgv, repeated } from "./policy-options.ts";

const LOOKUP_TIMEOUT_MS = 5000;

/** `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address -> host text and port (443 if none). */
export function parseTarget(text: string): { host: string; port: number } {
  let host = text;
  let portText: string | null = null;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close !== -1 && text.slice(close + 1).startsWith(":")) {
      host = text.slice(0, close + 1);
      portText = text.slice(close + 2);
    }
  } else if (text.split(":").length === 2) {
    host = text.slice(0, text.indexOf(":"));
    portText = text.slice(text.indexOf(":") + 1);
  }
  let port = 443;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw usageError(`${text}: the port must be 1 to 65535`);
    port = Number(portText);
  }
  const h = normaliseHost(host);
  if ("error" in h) throw usageError(`${text}: ${h.error}`);
  return { host, port };
}

interface AddrLine {
  addr: string;
  verdict: Verdict;
}

interface CheckResult {
  host: string;
  port: number;
  exe: string | null;
  verdict: Verdict;
  /** true: decided on the addresses below; false: did not resolve, decided by the rules alone; null: no lookup was needed. */
  resolved: boolean | null;
  addresses: AddrLine[];
  note: string | null;
}

async function resolveAll(name: string): Promise<{ addrs: string[] } | { error: string }> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error("timed out"), { code: "ETIMEOUT" })), LOOKUP_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([lookup(name, { all: true, verbatim: true }), timeout]);
    return { addrs: r.map((a) => a.address) };
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export async function check(
  p: Policy,
  target: string,
  exe: string | null,
  resolve: (name: string) => Promise<{ addrs: string[] } | { error: string }> = resolveAll,
): Promise<CheckResult> {
  const { host, port } = parseTarget(target);
  const t = decideTarget(p, host, port, exe);
  if (t.kind === "address") return { host: t.addr, port, exe, verdict: t.verdict, resolved: null, addresses: [], note: null };
  const name = t.name;
  if (t.verdict !== "resolve") {
    return { host: name, port, exe, verdict: t.verdict, resolved: null, addresses: [], note: `decided by the name alone, before any lookup` };
  }
  const r = await resolve(name);
  if ("error" in r) {
    return { host: name, port, exe, verdict: p.decideName(name, port, exe), resolved: false, addresses: [], note: `${name} does not resolve now (${r.error}): decided by the rules alone` };
  }
  const all = decideResolved(p, name, r.addrs, port, exe);
  const addresses = r.addrs.map((a) => ({ addr: a, verdict: decideResolved(p, name, [a], port, exe).verdict }));
  const note = all.verdict.allowed ? `the proxy would connect to ${all.allowed.join(" or ")}` : null;
  return { host: name, port, exe, verdict: all.verdict, resolved: true, addresses, note };
}

function word(v: Verdict): string {
  return v.outcome === "ok" ? "allowed" : v.outcome === "would_deny" ? "allowed (audit: enforce would deny)" : "denied";
}

function render(r: CheckResult): string {
  const shown = r.host.includes(":") ? `[${r.host}]:${r.port}` : `${r.host}:${r.port}`;
  const lines = [`${word(r.verdict)} ${shown}${r.exe === null ? "" : ` by ${r.exe}`}`, `  decided by: ${r.verdict.reason}`];
  if (r.addresses.length > 0) {
    lines.push(`  ${r.host} resolves now to:`);
    const width = Math.max(...r.addresses.map((a) => a.addr.length));
    for (const a of r.addresses) lines.push(`    ${a.addr.padEnd(width)}  ${word(a.verdict).padEnd(7)}  ${a.verdict.reason}`);
  }
  if (r.note) lines.push(`  ${r.note}`);
  return lines.join("\n");
}

function readInput(file: string): string {
  if (file === "-") {
    try {
      return readFileSync(0, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      return "";
    }
  }
  const r = readInputText(file);
  if ("why" in r) throw usageError(`cannot read ${file}: ${r.why}`);
  return r.text;
}

async function learn(files: string[]): Promise<number> {
  const inputs = files.length === 0 ? ["-"] : files;
  const l = new Learner();
  for (const f of inputs) {
    // A non-blocking standard input (EAGAIN) is read through Bun's event loop instead.
    let text = readInput(f);
    if (f === "-" && text === "") text = await Bun.stdin.text().catch(() => "");
    for (const line of text.split("\n")) l.line(line);
  }
  const sources = inputs.map((f) => (f === "-" ? "standard input" : f)).join(", ");
  process.stdout.write(l.render(sources));
  if (l.stats.proxyConnect + l.stats.dnsNames === 0) console.error("proxywall: policy learn: no proxy_connect lines nor bypass_detect lines with a DNS name in the input");
  return EXIT.ok;
}

export default defineCommand({
  meta: {
    name: "policy",
    description: [
      "Check a destination against the policy, or learn a policy from event lines.",
      "  proxywall policy check HOST[:PORT] [--exe PATH] [--json] [--allow R] [--deny R] [--policy FILE] [--policy-mode M]",
      "    prints the decision and the rule or guard row that made it; exit 0 allowed, 1 denied (PORT defaults to 443)",
      "  proxywall policy learn [EVENTS...]",
      "    turns proxy_connect lines (and bypass_detect lines with a DNS name) from files or standard input into a policy file",
      "The guard, always on:",
      ...guardTable().map((l) => `    ${l}`),
    ].join("\n"),
  },
  args: {
    action: { type: "positional", required: false, description: "check or learn" },
    ...policyArgs,
    exe: { type: "string", description: "check: the executable making the request (for rules with exe globs)" },
    json: { type: "boolean", description: "check: print the decision as one JSON object" },
  },
  async run({ args, rawArgs }) {
    const positionals = (args._ as string[]).slice(1);
    if (args.action === "learn") {
      for (const opt of ["allow", "deny", "policy", "policy-mode", "exe", "json"]) {
        if (rawArgs.some((a) => a === `--${opt}` || a.startsWith(`--${opt}=`))) throw usageError(`policy learn takes no --${opt}`);
      }
      return learn(positionals);
    }
    if (args.action !== "check") throw usageError(args.action === undefined ? "policy needs check or learn (try proxywall policy --help)" : `unknown policy action ${args.action} (check or learn)`);
    if (positionals.length !== 1) throw usageError(positionals.length === 0 ? "policy check needs HOST[:PORT]" : `policy check takes one HOST[:PORT], got ${positionals.length}`);
    const exes = repeated(rawArgs, "exe");
    if (exes.length > 1) throw usageError("--exe given more than once");
    const policy = loadPolicy(policyOptionsFromArgv(rawArgs), { hostAddresses: interfaceAddresses });
    if (typeof policy === "string") throw usageError(policy);
    const r = await check(policy, positionals[0]!, exes[0] ?? null);
    if (args.json) {
      const { verdict, ...rest } = r;
      console.log(JSON.stringify({ ...rest, ...verdict, addresses: r.addresses.map((a) => ({ addr: a.addr, ...a.verdict })) }));
    } else console.log(render(r));
    return r.verdict.allowed ? EXIT.ok : EXIT.failure;
  },
});
