// The ruleset as iptables-restore and ip6tables-restore input, for hosts without nft.
import type { Action, Family, Limit, Rule, Ruleset } from "./ruleset.ts";

const ICMPV6_NAMES: Record<string, string> = {
  "nd-router-solicit": "router-solicitation",
  "nd-neighbor-solicit": "neighbour-solicitation",
  "nd-neighbor-advert": "neighbour-advertisement",
  "mld-listener-report": "131",
  "mld2-listener-report": "143",
};

const limit = (l: Limit | null) => (l ? `-m limit --limit ${l.perSecond}/sec --limit-burst ${l.burst} ` : "");

function target(a: Action, family: Family): string {
  switch (a.kind) {
    case "accept":
      return "-j ACCEPT";
    case "drop":
      return "-j DROP";
    case "reject-tcp-reset":
      return "-j REJECT --reject-with tcp-reset";
    case "reject-port-unreachable":
      return `-j REJECT --reject-with ${family === "ipv4" ? "icmp-port-unreachable" : "icmp6-port-unreachable"}`;
    case "redirect":
      return `-j REDIRECT --to-ports ${a.port}`;
    case "queue":
      return `${limit(a.limit)}-j NFQUEUE --queue-num ${a.num} --queue-bypass`;
    case "log": {
      const t = a.target;
      return t.kind === "nflog"
        ? `${limit(a.limit)}-j NFLOG --nflog-group ${t.group} --nflog-prefix "${t.prefix}" --nflog-threshold 1`
        : `${limit(a.limit)}-j LOG --log-prefix "${t.prefix}" --log-level 4 --log-uid`;
    }
  }
}

/** Rule lines for `chain`; in a chain of our own, "accept" must be RETURN (ACCEPT would end the table). */
export function iptablesRules(r: Rule, family: Family, chain = "OUTPUT"): string[] {
  if (r.family && r.family !== family) return [];
  const m: string[] = [`-A ${chain}`];
  if (r.oif) m.push(`-o ${r.oif}`);
  if (r.daddr) m.push(`-d ${r.daddr}/${family === "ipv4" ? 32 : 128}`);
  if (r.proto === "icmp") m.push(family === "ipv4" ? "-p icmp" : "-p ipv6-icmp");
  else if (r.proto) m.push(`-p ${r.proto}`);
  if (r.dport !== undefined) m.push(`-m ${r.proto} --dport ${r.dport}`);
  if (r.mark !== undefined) m.push(`-m mark --mark 0x${r.mark.toString(16).padStart(8, "0")}`);
  if (r.ctState) m.push(`-m conntrack --ctstate ${r.ctState.map((s) => s.toUpperCase()).join(",")}`);
  const head = m.join(" ");
  const tail = chain !== "OUTPUT" && r.action.kind === "accept" ? "-j RETURN" : target(r.action, family);
  if (r.icmpv6Types) {
    return r.icmpv6Types.map((t) => `${head} -p ipv6-icmp -m icmp6 --icmpv6-type ${ICMPV6_NAMES[t] ?? t} ${tail}`);
  }
  return [`${head} ${tail}`];
}

/**
 * iptables-restore input for one family: the filter table's OUTPUT chain is the fence; the hold
 * chain, when there is one, is the mangle table's OUTPUT chain, which runs before it; DNS's
 * redirect is the nat table's OUTPUT chain, which runs before both.
 */
export function renderIptables(ruleset: Ruleset, family: Family): string {
  const lines = (rules: readonly Rule[]) => rules.flatMap((r) => iptablesRules(r, family)).join("\n");
  const mangle =
    ruleset.hold.length === 0
      ? ""
      : `*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${lines(ruleset.hold)}\nCOMMIT\n`;
  const nat =
    ruleset.nat.length === 0 ? "" : `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${lines(ruleset.nat)}\nCOMMIT\n`;
  return `${nat}${mangle}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n${lines(ruleset.rules)}\nCOMMIT\n`;
}
