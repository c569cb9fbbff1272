// Loading a policy: --allow/--deny texts and policy file entries -> rules, each checked (an allow
// rule inside a guard row that is never allowed is refused, as are relative executable paths), or
// the one-line error that names where the entry came from and what is wrong.
import { type HostMatcher, formatRule, parsePorts, parseRule, DEFAULT_PORTS } from "./rules.ts";
import { type IP, carriedIPv4, cidrContains, formatCidr } from "./address.ts";
import { GUARD_ROWS, METADATA_NAMES, isLocalhostName } from "./guard.ts";
import { type RawEntry, readPolicyFile } from "./file.ts";
import { Policy, type PolicyContext, type PolicyOptions } from "./policy.ts";
import type { Rule } from "./rule-index.ts";

/** The "never" guard row (or metadata/localhost name) that a whole allow rule falls in, if any. */
function neverProblem(host: HostMatcher): string | null {
  if (host.kind === "name") {
    if (METADATA_NAMES.has(host.name)) return `${host.name} is a cloud metadata name, which the guard always refuses`;
    if (isLocalhostName(host.name)) return `${host.name} is loopback, which the guard always refuses`;
    return null;
  }
  if (host.kind === "suffix") return host.suffix === "localhost" ? "*.localhost is loopback, which the guard always refuses" : null;
  const c = host.cidr;
  const ip = c.ip.v === 6 ? carriedIPv4(c.ip.w) : null;
  const checkIp: IP = ip && c.len >= 96 ? { v: 4, n: ip.v4 } : c.ip;
  const checkLen = ip && c.len >= 96 ? c.len - 96 : c.len;
  for (const row of GUARD_ROWS) {
    if (row.kind !== "never") continue;
    for (const rc of row.cidrs) {
      if (checkLen >= rc.len && cidrContains(rc, checkIp)) {
        return `${formatCidr(c)} is ${row.label} (${formatCidr(rc)}), which the guard always refuses`;
      }
    }
  }
  return null;
}

function checkExe(globs: readonly string[]): string | null {
  for (const g of globs) {
    if (!g.startsWith("/") && !g.startsWith("*")) return `exe ${JSON.stringify(g)}: an executable is an absolute path or a glob such as /usr/bin/* or **/node`;
  }
  return null;
}

/** One --allow/--deny text or file entry -> a rule, or the problem. */
export function ruleFromEntry(e: RawEntry): Rule | string {
  const parsed = parseRule(e.host);
  if ("error" in parsed) return parsed.error;
  let ports = parsed.ports;
  let portsGiven = parsed.portsGiven;
  if (e.ports !== null) {
    if (parsed.portsGiven) return `ports given twice (in host and in ports)`;
    const p = parsePorts(e.ports);
    if (p !== null && "error" in p) return p.error;
    ports = p;
    portsGiven = true;
  }
  if (e.exe !== null) {
    const bad = checkExe(e.exe);
    if (bad) return bad;
  }
  if (e.action === "allow") {
    const never = neverProblem(parsed.host);
    if (never) return never;
  }
  const text = formatRule({ host: parsed.host, ports, portsGiven }) + (e.exe === null ? "" : ` exe=${e.exe.join(",")}`);
  return { action: e.action, host: parsed.host, ports: portsGiven ? ports : DEFAULT_PORTS, exe: e.exe, text, origin: e.file === null ? null : e.origin };
}

export function loadPolicy(o: PolicyOptions, ctx: PolicyContext): Policy | string {
  const entries: RawEntry[] = [];
  for (const [action, list] of [
    ["allow", o.allow],
    ["deny", o.deny],
  ] as const) {
    for (const text of list) entries.push({ action, origin: `--${action}`, file: null, where: `--${action}`, host: text, ports: null, exe: null });
  }
  for (const file of o.files) {
    const r = readPolicyFile(file);
    if (typeof r === "string") return r;
    entries.push(...r);
  }
  const rules: Rule[] = [];
  for (const e of entries) {
    const r = ruleFromEntry(e);
    if (typeof r === "string") {
      return `${e.file === null ? "" : `${e.file}: `}${e.where} ${JSON.stringify(e.host)}: ${r}`;
    }
    rules.push(r);
  }
  return new Policy(rules, o.mode, ctx);
}
