// `proxywall monitor` on a namespace it did not build: log rules only, in a chain of its own that
// runs before the namespace's own filter rules and decides nothing (policy accept), so attaching
// never changes what the namespace lets through. Removing them leaves the namespace as it was.
import * as v from "valibot";
import { ALL_FEATURES, type LogTarget, type Rule, type Ruleset } from "./ruleset.ts";
import { iptablesRules } from "./render-iptables.ts";
import { nftRule } from "./render-nft.ts";
import type { Family } from "./ruleset.ts";

export const OBSERVE_TABLE = "proxywall_monitor";
export const OBSERVE_CHAIN = "PROXYWALL_MONITOR";

export interface ObserveInput {
  /** Where the namespace's own proxy listens: connections there are not bypasses. */
  allow: { addr: string; port: number }[];
  log: Exclude<LogTarget, { kind: "none" }>;
  logRate: number;
  features: { conntrack: boolean; limit: boolean };
}

export function planObserve(input: ObserveInput): Ruleset {
  const rules: Rule[] = [{ comment: "loopback", oif: "lo", action: { kind: "accept" } }];
  if (input.features.conntrack) rules.push({ comment: "replies and established connections", ctState: ["established", "related"], action: { kind: "accept" } });
  for (const a of input.allow) {
    rules.push({ comment: "the proxy", family: a.addr.includes(":") ? "ipv6" : "ipv4", proto: "tcp", daddr: a.addr, dport: a.port, action: { kind: "accept" } });
  }
  const limit = input.features.limit ? { perSecond: input.logRate, burst: input.logRate * 2 } : null;
  for (const proto of ["tcp", "udp"] as const) {
    rules.push({ comment: `log ${proto} connection`, proto, action: { kind: "log", target: input.log, limit } });
  }
  return { rules, hold: [], nat: [] };
}

export const OBSERVE_FEATURES = { conntrack: ALL_FEATURES.conntrack, limit: ALL_FEATURES.limit };

export function renderObserveNft(rs: Ruleset): string {
  const body = rs.rules.map((r) => `\t\t${nftRule(r)}\n`).join("");
  return `add table inet ${OBSERVE_TABLE}\ndelete table inet ${OBSERVE_TABLE}\ntable inet ${OBSERVE_TABLE} {\n\tchain observe {\n\t\ttype filter hook output priority -5; policy accept;\n${body}\t}\n}\n`;
}

export const REMOVE_OBSERVE_NFT = `delete table inet ${OBSERVE_TABLE}\n`;

/** For `iptables-restore --noflush`: the chain (re)made in mangle, and a jump to it first in OUTPUT. */
export function renderObserveIptables(rs: Ruleset, family: Family): string {
  const lines = rs.rules.flatMap((r) => iptablesRules(r, family, OBSERVE_CHAIN));
  return `*mangle\n:${OBSERVE_CHAIN} - [0:0]\n${lines.join("\n")}\n-I OUTPUT 1 -j ${OBSERVE_CHAIN}\nCOMMIT\n`;
}

/** For `iptables-restore --noflush`: the jump and the chain go. */
export const REMOVE_OBSERVE_IPTABLES = `*mangle\n-D OUTPUT -j ${OBSERVE_CHAIN}\n-F ${OBSERVE_CHAIN}\n-X ${OBSERVE_CHAIN}\nCOMMIT\n`;

/**
 * The tables iptables-nft makes in nftables for the chain above. It never removes a table, so
 * `monitor` deletes each one that was not there before it attached and is empty again.
 */
export const IPTABLES_NFT_TABLES = [
  { family: "ip", name: "mangle" },
  { family: "ip6", name: "mangle" },
] as const;

/** `nft list tables` output as "family name" strings. */
export function listedTables(text: string): Set<string> {
  return new Set(text.split("\n").flatMap((l) => /^table (\S+) (\S+)$/.exec(l.trim())?.slice(1, 3).join(" ") ?? []));
}

const NftListing = v.object({ nftables: v.array(v.record(v.string(), v.unknown())) });

/**
 * Whether `nft -j list table F T` shows nothing but the table and its chains: no rule, set, map or
 * other object that someone may still want. Between this look and the delete another program
 * could add a rule; nft offers no conditional delete (on this kernel deleting a chain takes its
 * rules with it), so that window, a few milliseconds, stays.
 */
export function isEmptyTable(json: string): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return false;
  }
  const r = v.safeParse(NftListing, doc);
  return r.success && r.output.nftables.every((item) => Object.keys(item).every((k) => k === "metainfo" || k === "table" || k === "chain"));
}
