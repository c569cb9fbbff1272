// `proxywall monitor` on a namespace it did not build: log rules only, in a chain of its own that
// runs before the namespace's own filter rules and decides nothing (policy accept), so attaching
// never changes what the namespace lets through. Removing them leaves the namespace as it was.
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
  return { rules, hold: [] };
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
