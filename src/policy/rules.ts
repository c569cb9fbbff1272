// Rule syntax: `HOST[:PORTS]`, where HOST is an exact name, `*.suffix` (any subdomain, not the
// apex), an IP address or a CIDR (IPv6 in brackets when ports follow: `[2001:db8::/32]:443`), and
// PORTS is `443`, `80,443`, `8000-8100` (or a list mixing them), or `*` for every port. A rule
// without ports means 80 and 443. Wildcards over a public suffix (`*.com`, `*.co.uk`, `*.github.io`)
// or a whole top-level domain are refused: the public suffix list comes from tldts, which ships it
// and is kept current with it. It is loaded only for a wildcard rule: loading it costs every run
// 6-8 ms (compiled, without the optimizing JIT), and most runs have no wildcard.
import type * as Tldts from "tldts";
import { type Cidr, formatCidr, normaliseHost, parseCidr } from "./address.ts";

export type HostMatcher = { kind: "name"; name: string } | { kind: "suffix"; suffix: string } | { kind: "cidr"; cidr: Cidr };

/** Inclusive port ranges, sorted and merged; null means every port. */
export type PortSet = readonly (readonly [number, number])[] | null;

export const DEFAULT_PORTS: PortSet = [
  [80, 80],
  [443, 443],
];

export interface ParsedRule {
  host: HostMatcher;
  ports: PortSet;
  /** Whether PORTS was written (false: the default 80 and 443). */
  portsGiven: boolean;
}

export function formatHost(h: HostMatcher): string {
  return h.kind === "name" ? h.name : h.kind === "suffix" ? `*.${h.suffix}` : formatCidr(h.cidr);
}

export function formatPorts(ports: PortSet): string {
  if (ports === null) return "*";
  return ports.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(",");
}

/** The rule as one could write it again: HOST, HOST:PORTS, [IPv6]:PORTS. */
export function formatRule(r: { host: HostMatcher; ports: PortSet; portsGiven: boolean }): string {
  const host = formatHost(r.host);
  if (!r.portsGiven) return host;
  return `${host.includes(":") ? `[${host}]` : host}:${formatPorts(r.ports)}`;
}

export function portsMatch(ports: PortSet, port: number): boolean {
  if (ports === null) return true;
  for (const [lo, hi] of ports) if (port >= lo && port <= hi) return true;
  return false;
}

/** `443`, `80,443`, `8000-8100`, `80,8000-8100`, `*` -> merged ranges, or an error. */
export function parsePorts(text: string): PortSet | { error: string } {
  if (text === "*") return null;
  const ranges: [number, number][] = [];
  for (const part of text.split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return { error: `ports ${JSON.stringify(text)}: expected PORT, PORT,PORT, LOW-HIGH or *` };
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > 65535) return { error: `ports ${JSON.stringify(text)}: a port is 1 to 65535` };
    if (lo > hi) return { error: `ports ${JSON.stringify(text)}: range ${part} runs backwards` };
    ranges.push([lo, hi]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

let tldts: typeof Tldts | null = null;

/** Why `*.suffix` is refused, or null when it is a fine wildcard. */
export function wildcardProblem(suffix: string): string | null {
  tldts ??= require("tldts") as typeof Tldts;
  const d = tldts.parse(suffix, { allowPrivateDomains: true, extractHostname: false });
  if (d.publicSuffix === suffix && (d.isIcann || d.isPrivate)) {
    return `*.${suffix} is a wildcard over the public suffix ${suffix}, where anyone can register a name (list the sites instead)`;
  }
  if (!suffix.includes(".")) return `*.${suffix} is a wildcard over the whole top-level domain ${suffix}`;
  return null;
}

export function parseHostMatcher(text: string): HostMatcher | { error: string } {
  if (text.includes("/")) {
    const c = parseCidr(text);
    return "error" in c ? c : { kind: "cidr", cidr: c };
  }
  if (text.includes("*")) {
    if (!text.startsWith("*.") || text.indexOf("*", 1) !== -1) {
      return { error: `${text}: a wildcard is *.SUFFIX (any subdomain of SUFFIX), with * only as the first label` };
    }
    const h = normaliseHost(text.slice(2));
    if ("error" in h) return h;
    if ("addr" in h) return { error: `${text}: a wildcard needs a domain name after *.` };
    const problem = wildcardProblem(h.name);
    return problem ? { error: problem } : { kind: "suffix", suffix: h.name };
  }
  const h = normaliseHost(text);
  if ("error" in h) return h;
  if ("name" in h) return { kind: "name", name: h.name };
  const c = parseCidr(h.addr);
  return "error" in c ? c : { kind: "cidr", cidr: c };
}

/** `HOST[:PORTS]` -> a rule, or an error that says what is wrong. */
export function parseRule(text: string): ParsedRule | { error: string } {
  const t = text.trim();
  if (t.length === 0) return { error: "empty rule" };
  let hostText: string;
  let portsText: string | null = null;
  if (t.startsWith("[")) {
    const close = t.indexOf("]");
    if (close === -1) return { error: `${t}: unbalanced [` };
    hostText = t.slice(1, close);
    let rest = t.slice(close + 1);
    const prefix = /^\/\d+/.exec(rest); // [2001:db8::]/32:443
    if (prefix) {
      hostText += prefix[0];
      rest = rest.slice(prefix[0].length);
    }
    if (rest !== "") {
      if (!rest.startsWith(":")) return { error: `${t}: expected :PORTS after ]` };
      portsText = rest.slice(1);
    }
  } else {
    const colons = t.split(":").length - 1;
    if (colons > 1) hostText = t; // a bare IPv6 address or CIDR: no ports without brackets
    else if (colons === 1) {
      hostText = t.slice(0, t.indexOf(":"));
      portsText = t.slice(t.indexOf(":") + 1);
    } else hostText = t;
  }
  const host = parseHostMatcher(hostText);
  if ("error" in host) return host;
  if (portsText === null) return { host, ports: DEFAULT_PORTS, portsGiven: false };
  const ports = parsePorts(portsText);
  if (ports !== null && "error" in ports) return ports;
  return { host, ports, portsGiven: true };
}
