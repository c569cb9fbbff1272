// Rejected-packet totals from the fence's own rule counters: exact, whatever the log rate limit
// let through to proxywall.
import type { Backend } from "../plan/sandbox-plan.ts";
import { NFT_TABLE } from "../plan/render-nft.ts";
import { inNetns } from "../sys/netns.ts";
import { findTool, startTool } from "../sys/tools.ts";
import { iptablesSaveTools } from "../fence/install.ts";

export interface RejectTotals {
  tcp: number;
  udp: number;
  /** Packets of other protocols, or ICMP to anywhere but the host side: dropped. */
  other: number;
}

type Kind = keyof RejectTotals;

/** Which total a fence rule adds to, by its comment (nft). */
export function kindOfComment(comment: string): Kind | null {
  if (comment.startsWith("reject tcp bypass")) return "tcp";
  if (comment.startsWith("reject udp bypass")) return "udp";
  if (comment === "everything else") return "other";
  return null;
}

/** Which total an iptables-save rule line adds to. */
export function kindOfIptablesRule(rule: string): Kind | null {
  if (!rule.startsWith("-A OUTPUT")) return null;
  if (rule.includes("-j REJECT")) return rule.includes("-p tcp") ? "tcp" : rule.includes("-p udp") ? "udp" : null;
  return rule === "-A OUTPUT -j DROP" ? "other" : null;
}

export function totalsFromNftJson(json: string): RejectTotals {
  const totals: RejectTotals = { tcp: 0, udp: 0, other: 0 };
  const doc = JSON.parse(json) as { nftables?: { rule?: { chain?: string; comment?: string; expr?: Record<string, any>[] } }[] };
  for (const item of doc.nftables ?? []) {
    const rule = item.rule;
    if (!rule || rule.chain !== "output" || !rule.comment) continue;
    const kind = kindOfComment(rule.comment);
    const counter = rule.expr?.find((e) => "counter" in e)?.counter;
    if (kind && counter && typeof counter.packets === "number") totals[kind] += counter.packets;
  }
  return totals;
}

/**
 * The same from `nft list ruleset` text: the counted rules of proxywall's own output chain, known
 * by their comments (the fence check reads this listing, so one read gives both).
 */
export function totalsFromNftText(text: string): RejectTotals {
  const totals: RejectTotals = { tcp: 0, udp: 0, other: 0 };
  let inTable = false;
  let chain = "";
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (/^table /.test(t)) inTable = t.startsWith(`table inet ${NFT_TABLE} `);
    const c = /^chain (\S+) \{/.exec(t);
    if (c) chain = c[1]!;
    const m = /\bcounter packets (\d+) bytes \d+\b.*\bcomment "([^"]*)"/.exec(t);
    if (!m || !inTable || chain !== "output") continue;
    const kind = kindOfComment(m[2]!);
    if (kind) totals[kind] += Number(m[1]);
  }
  return totals;
}

/** Totals since `base`, or null when a counter went back (its rule was removed or replaced). */
export function totalsSince(now: RejectTotals, base: RejectTotals | null): RejectTotals | null {
  const b = base ?? { tcp: 0, udp: 0, other: 0 };
  const d = { tcp: now.tcp - b.tcp, udp: now.udp - b.udp, other: now.other - b.other };
  return d.tcp < 0 || d.udp < 0 || d.other < 0 ? null : d;
}

export function totalsFromIptablesSave(texts: readonly string[]): RejectTotals {
  const totals: RejectTotals = { tcp: 0, udp: 0, other: 0 };
  for (const text of texts) {
    let table = "";
    for (const line of text.split("\n")) {
      if (line.startsWith("*")) table = line.slice(1);
      const m = /^\[(\d+):\d+\] (.*)$/.exec(line);
      if (!m || table !== "filter") continue;
      const kind = kindOfIptablesRule(m[2]!);
      if (kind) totals[kind] += Number(m[1]);
    }
  }
  return totals;
}

/** Reads the totals inside the sandbox namespace; null when they cannot be read. */
export async function readRejectTotals(nsPath: string, backend: Backend): Promise<RejectTotals | null> {
  try {
    if (backend === "nft") {
      const nft = findTool("nft");
      if (!nft) return null;
      const r = await inNetns(nsPath, () => startTool(nft, ["-j", "list", "table", "inet", NFT_TABLE]));
      return r.code === 0 ? totalsFromNftJson(r.stdout) : null;
    }
    const tools = iptablesSaveTools(nsPath);
    if (!tools) return null;
    const runs = await Promise.all(tools.map((t) => inNetns(nsPath, () => startTool(t, ["-c", "-t", "filter"]))));
    return runs.every((r) => r.code === 0) ? totalsFromIptablesSave(runs.map((r) => r.stdout)) : null;
  } catch {
    return null;
  }
}
