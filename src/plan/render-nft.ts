// The ruleset as one nftables script for `nft -f FILE`: one inet table, applied atomically.
// Protocols are named only with words nft knows itself (tcp, udp, icmp, icmpv6): any other name
// goes through /etc/protocols, which images without the netbase package lack ("Could not resolve
// protocol name" for ipv6-icmp).
import type { Action, Limit, Rule, Ruleset } from "./ruleset.ts";

export const NFT_TABLE = "proxywall";

const quote = (s: string) => `"${s.replace(/["\\]/g, "")}"`;

const limit = (l: Limit | null) => (l ? `limit rate ${l.perSecond}/second burst ${l.burst} packets ` : "");

function action(a: Action): string {
  switch (a.kind) {
    case "accept":
    case "drop":
      return a.kind;
    case "reject-tcp-reset":
      return "reject with tcp reset";
    case "reject-port-unreachable":
      return "reject with icmpx type port-unreachable";
    case "redirect":
      return `redirect to :${a.port}`;
    case "queue":
      // bypass: with nobody listening the packet goes on to the rules below (log, reject).
      return `${limit(a.limit)}queue num ${a.num} bypass`;
    case "log": {
      const t = a.target;
      return t.kind === "nflog"
        ? `${limit(a.limit)}log prefix ${quote(t.prefix)} group ${t.group} queue-threshold 1`
        : `${limit(a.limit)}log prefix ${quote(t.prefix)} level warn flags skuid`;
    }
  }
}

export function nftRule(r: Rule): string {
  const parts: string[] = [];
  if (r.oif) parts.push(`oifname ${quote(r.oif)}`);
  if (r.ctState) parts.push(`ct state ${r.ctState.join(",")}`);
  if (r.daddr) parts.push(`${r.family === "ipv6" ? "ip6" : "ip"} daddr ${r.daddr}`);
  if (r.icmpv6Types) parts.push(`icmpv6 type { ${r.icmpv6Types.join(", ")} }`);
  if (r.proto === "icmp") parts.push(`meta l4proto ${r.family === "ipv6" ? "icmpv6" : "icmp"}`);
  else if (r.proto && r.dport !== undefined) parts.push(`${r.proto} dport ${r.dport}`);
  else if (r.proto) parts.push(`meta l4proto ${r.proto}`);
  else if (r.family && !r.daddr && !r.icmpv6Types) parts.push(`meta nfproto ${r.family}`);
  if (r.mark !== undefined) parts.push(`meta mark 0x${r.mark.toString(16).padStart(8, "0")}`);
  if (r.counter) parts.push("counter");
  parts.push(action(r.action), `comment ${quote(r.comment)}`);
  return parts.join(" ");
}

const body = (rules: readonly Rule[]) => rules.map((r) => `\t\t${nftRule(r)}\n`).join("");

/**
 * The table, for `nft -f` in a namespace that has none yet (a sandbox's is always new). No
 * "add table; delete table" preamble to replace an older one: a delete in the batch made the
 * kernel's commit wait, 14-20 ms against 3-5 ms without it (measured, fresh namespace).
 */
export function renderNft(ruleset: Ruleset, table = NFT_TABLE): string {
  // The hold chain runs just before the fence (see ruleset.ts for why it is a chain of its own).
  const hold =
    ruleset.hold.length === 0
      ? ""
      : `\tchain hold {\n\t\ttype filter hook output priority -10; policy accept;\n${body(ruleset.hold)}\t}\n`;
  // The nat chain runs at priority -100 (dstnat), before the hold (-10) and the fence (0).
  const nat = ruleset.nat.length === 0 ? "" : `\tchain dns {\n\t\ttype nat hook output priority -100; policy accept;\n${body(ruleset.nat)}\t}\n`;
  return `table inet ${table} {\n${nat}${hold}\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n${body(ruleset.rules)}\t}\n}\n`;
}
