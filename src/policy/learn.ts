// `policy learn`: event lines in, the smallest policy file that allows what was seen out. Each
// proxy_connect line is one destination (host, port); each bypass_detect line with a DNS query is a
// name the program wanted (ports unknown: the default 80 and 443). Names of one site (registrable
// domain, by the public suffix list) seen under two or more subdomains become `*.site`; ports are
// those seen, merged into ranges. Counts and first/last seen go in comments.
import { getDomain } from "tldts";
import { normaliseHost, parseIP } from "./address.ts";
import { METADATA_NAMES, guardRow, isLocalhostName } from "./guard.ts";
import { formatPorts, parsePorts, wildcardProblem } from "./rules.ts";

interface Seen {
  count: number;
  dnsCount: number;
  first: string;
  last: string;
  ports: Set<number>;
  /** Executables that made the connections, where the event names them. */
  exes: Set<string>;
}

export interface LearnStats {
  lines: number;
  proxyConnect: number;
  dnsNames: number;
  skipped: number;
}

export class Learner {
  private readonly names = new Map<string, Seen>();
  private readonly addrs = new Map<string, Seen>();
  /** Destinations the guard refuses whatever the rules say: reported, never allowed. */
  private readonly refused = new Map<string, { why: string; count: number }>();
  readonly stats: LearnStats = { lines: 0, proxyConnect: 0, dnsNames: 0, skipped: 0 };

  /** One line of input; lines that are not events proxywall learns from are counted as skipped. */
  line(text: string): void {
    if (text.trim() === "") return;
    this.stats.lines++;
    let e: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
      e = parsed as Record<string, unknown>;
    } catch {
      this.stats.skipped++;
      return;
    }
    const ts = typeof e.ts === "string" ? e.ts : "";
    if (e.event === "proxy_connect" && typeof e.dst_host === "string" && Number.isInteger(e.dst_port)) {
      const p = e.process as { resolved?: unknown; exe?: unknown } | null | undefined;
      const exe = p && p.resolved === true && typeof p.exe === "string" ? p.exe : null;
      if (this.add(e.dst_host, e.dst_port as number, ts, false, exe)) this.stats.proxyConnect++;
      else this.stats.skipped++;
    } else if (e.event === "bypass_detect" && typeof e.dns_query === "string" && e.dns_query !== "") {
      if (this.add(e.dns_query, null, ts, true)) this.stats.dnsNames++;
      else this.stats.skipped++;
    } else this.stats.skipped++;
  }

  private add(host: string, port: number | null, ts: string, dns: boolean, exe: string | null = null): boolean {
    const h = normaliseHost(host);
    if ("error" in h) return false;
    if (port !== null && (port < 1 || port > 65535)) return false;
    const key = "addr" in h ? h.addr : h.name;
    const why = "addr" in h ? neverRow(h.addr) : METADATA_NAMES.has(h.name) ? "cloud metadata name" : isLocalhostName(h.name) ? "loopback name" : null;
    if (why) {
      const shown = port === null ? key : `${key.includes(":") ? `[${key}]` : key}:${port}`;
      const r = this.refused.get(shown);
      if (r) r.count++;
      else this.refused.set(shown, { why, count: 1 });
      return true;
    }
    const map = "addr" in h ? this.addrs : this.names;
    let s = map.get(key);
    if (!s) map.set(key, (s = { count: 0, dnsCount: 0, first: ts, last: ts, ports: new Set(), exes: new Set() }));
    if (exe !== null) s.exes.add(exe);
    if (dns) s.dnsCount++;
    else s.count++;
    if (port !== null) s.ports.add(port);
    if (ts !== "" && (s.first === "" || ts < s.first)) s.first = ts;
    if (ts > s.last) s.last = ts;
    return true;
  }

  /** The policy file (YAML), ready to review and pass to --policy. */
  render(sources: string): string {
    const entries: { sortKey: string; comment: string; rule: string }[] = [];
    // Names, grouped by site.
    const sites = new Map<string, string[]>();
    for (const name of this.names.keys()) {
      const site = getDomain(name, { allowPrivateDomains: true, extractHostname: false });
      const key = site && site !== name && wildcardProblem(site) === null ? site : `=${name}`;
      const list = sites.get(key);
      if (list) list.push(name);
      else sites.set(key, [name]);
    }
    for (const [key, members] of sites) {
      if (!key.startsWith("=") && members.length >= 2) {
        const group = members.map((m) => this.names.get(m)!);
        entries.push({
          sortKey: siteOrder(key),
          comment: `${describe(merge(group))}: ${members.sort().join(", ")}`,
          rule: withPorts(`*.${key}`, merge(group).ports),
        });
      } else {
        for (const name of members) {
          const s = this.names.get(name)!;
          entries.push({ sortKey: siteOrder(name), comment: describe(s), rule: withPorts(name, s.ports) });
        }
      }
    }
    for (const [addr, s] of this.addrs) {
      entries.push({ sortKey: `~${addr}`, comment: describe(s), rule: withPorts(addr.includes(":") ? `[${addr}]` : addr, s.ports, addr.includes(":")) });
    }
    entries.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    const st = this.stats;
    const out = [
      `# proxywall policy, learned by \`proxywall policy learn\` from ${sources}:`,
      `# ${st.proxyConnect} proxy_connect lines, ${st.dnsNames} DNS names from bypass_detect lines, ${st.skipped} other lines skipped.`,
      "# Review it before use: every entry allows what was seen, and a *.site entry allows every subdomain of that site.",
      "# A rule without ports means 80 and 443.",
    ];
    if (entries.length === 0) out.push("allow: []");
    else {
      out.push("allow:");
      for (const e of entries) out.push(`  # ${e.comment}`, `  - ${JSON.stringify(e.rule)}`);
    }
    if (this.refused.size > 0) {
      out.push("# Seen but not allowable (the guard refuses these whatever the rules say):");
      for (const [dst, r] of [...this.refused].sort()) out.push(`#   ${dst}: ${r.why}, ${plural(r.count, "time")}`);
    }
    return `${out.join("\n")}\n`;
  }
}

function neverRow(addr: string): string | null {
  const ip = parseIP(addr);
  const hit = ip && guardRow(ip);
  return hit && hit.row.kind === "never" ? hit.row.label : null;
}

/** Sorts names by site, then by the rest from the top label down: `b.example.com` after `example.com`. */
function siteOrder(name: string): string {
  return name.split(".").reverse().join(".");
}

function merge(list: Seen[]): Seen {
  const out: Seen = { count: 0, dnsCount: 0, first: "", last: "", ports: new Set(), exes: new Set() };
  for (const s of list) {
    out.count += s.count;
    out.dnsCount += s.dnsCount;
    for (const p of s.ports) out.ports.add(p);
    for (const x of s.exes) out.exes.add(x);
    if (s.first !== "" && (out.first === "" || s.first < out.first)) out.first = s.first;
    if (s.last > out.last) out.last = s.last;
  }
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function describe(s: Seen): string {
  const parts: string[] = [];
  if (s.count > 0) parts.push(plural(s.count, "connection"));
  if (s.dnsCount > 0) parts.push(`${plural(s.dnsCount, "DNS query")}${s.count === 0 ? " (ports not seen: 80 and 443)" : ""}`.replace("querys", "queries"));
  if (s.first !== "") parts.push(s.first === s.last ? `seen ${s.first}` : `first ${s.first}, last ${s.last}`);
  // Who connected, for review (an entry could be narrowed to them with exe:); not a rule itself.
  if (s.exes.size > 0) parts.push(`by ${[...s.exes].sort().slice(0, 5).join(", ")}${s.exes.size > 5 ? ` and ${s.exes.size - 5} more` : ""}`);
  return parts.join(", ");
}

/** HOST or HOST:PORTS, the ports exactly those seen (none seen, or 80 and 443: the default). */
function withPorts(host: string, ports: Set<number>, bracketed = false): string {
  if (ports.size === 0 || (ports.size === 2 && ports.has(80) && ports.has(443))) return bracketed ? host.slice(1, -1) : host;
  const merged = parsePorts([...ports].join(","));
  return `${host}:${formatPorts(merged as never)}`;
}
