// The fence as pure functions: the plan's order and the exact rendered text, without root.
import { describe, expect, test } from "bun:test";
import { ALL_FEATURES, HOLD_QUEUE, planRuleset, type RulesetInput } from "../src/plan/ruleset.ts";
import { nftRule, renderNft } from "../src/plan/render-nft.ts";
import { fenceSteps } from "../src/plan/sandbox-plan.ts";
import { renderIptables } from "../src/plan/render-iptables.ts";
import { isEmptyTable, listedTables, OBSERVE_FEATURES, planObserve, renderObserveIptables, renderObserveNft } from "../src/plan/observe-rules.ts";
import { IPTABLES_PREFIX_MAX } from "../src/kernel-log/log-prefix.ts";
import { sandboxNames } from "../src/plan/addresses.ts";

const base: RulesetInput = {
  log: { kind: "nflog", group: 1, prefix: "proxywall:abcd1234:" },
  logRate: 100,
  hold: null,
  features: ALL_FEATURES,
};

describe("planRuleset", () => {
  test("order: loopback (the proxy's door is there), replies, ND, then log+reject per protocol, then the rest", () => {
    const comments = planRuleset(base).rules.map((r) => `${r.comment}${r.family ? `/${r.family}` : ""}`);
    expect(comments).toEqual([
      "loopback, including the resets the rejects below send",
      "replies",
      "neighbour discovery/ipv6",
      "log tcp bypass",
      "reject tcp bypass",
      "log udp bypass",
      "reject udp bypass",
      "log other protocols",
      "everything else",
    ]);
  });

  test("TCP is rejected with a reset, UDP with port-unreachable; rejects count packets", () => {
    const rules = planRuleset(base).rules;
    const tcp = rules.find((r) => r.comment === "reject tcp bypass")!;
    const udp = rules.find((r) => r.comment === "reject udp bypass")!;
    expect(tcp.action.kind).toBe("reject-tcp-reset");
    expect(udp.action.kind).toBe("reject-port-unreachable");
    expect(tcp.counter && udp.counter).toBe(true);
  });

  test("missing kernel features leave their rules out but never the rejects", () => {
    const rules = planRuleset({ ...base, features: { conntrack: false, log: false, limit: false, queue: false, dns: false } }).rules;
    expect(rules.some((r) => r.ctState)).toBe(false);
    expect(rules.some((r) => r.action.kind === "log")).toBe(false);
    expect(rules.filter((r) => r.action.kind.startsWith("reject"))).toHaveLength(2);
    const noLimit = planRuleset({ ...base, features: { ...ALL_FEATURES, limit: false } }).rules;
    expect(noLimit.filter((r) => r.action.kind === "log").every((r) => r.action.kind === "log" && r.action.limit === null)).toBe(true);
  });

  test("log none: no log step", () => {
    expect(planRuleset({ ...base, log: { kind: "none" } }).rules.some((r) => r.action.kind === "log")).toBe(false);
  });
});

describe("renderNft", () => {
  test("exact script, NFLOG", () => {
    // No add/delete preamble: a sandbox's namespace is always new, and a delete made the commit wait.
    expect(renderNft(planRuleset(base))).toBe(`table inet proxywall {
\tchain output {
\t\ttype filter hook output priority filter; policy drop;
\t\toifname "lo" accept comment "loopback, including the resets the rejects below send"
\t\tct state established,related accept comment "replies"
\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept comment "neighbour discovery"
\t\tmeta l4proto tcp limit rate 100/second burst 200 packets log prefix "proxywall:abcd1234:" group 1 queue-threshold 1 comment "log tcp bypass"
\t\tmeta l4proto tcp counter reject with tcp reset comment "reject tcp bypass"
\t\tmeta l4proto udp limit rate 100/second burst 200 packets log prefix "proxywall:abcd1234:" group 1 queue-threshold 1 comment "log udp bypass"
\t\tmeta l4proto udp counter reject with icmpx type port-unreachable comment "reject udp bypass"
\t\tlimit rate 100/second burst 200 packets log prefix "proxywall:abcd1234:" group 1 queue-threshold 1 comment "log other protocols"
\t\tcounter drop comment "everything else"
\t}
}
`);
  });

  test("kmsg log step quotes the prefix and asks for the socket uid", () => {
    const text = renderNft(planRuleset({ ...base, log: { kind: "kmsg", prefix: "proxywall:abcd1234:" } }));
    expect(text).toContain(`meta l4proto tcp limit rate 100/second burst 200 packets log prefix "proxywall:abcd1234:" level warn flags skuid comment "log tcp bypass"`);
  });

  test("protocols by names nft knows itself: no /etc/protocols needed (images without netbase)", () => {
    expect(nftRule({ comment: "c", family: "ipv6", proto: "icmp", action: { kind: "accept" } })).toBe(`meta l4proto icmpv6 accept comment "c"`);
    expect(nftRule({ comment: "c", family: "ipv4", proto: "icmp", action: { kind: "accept" } })).toBe(`meta l4proto icmp accept comment "c"`);
  });

  test("the fence steps: one nft fed on /proc/self/fd/0 (no file, no /dev/stdin), or both iptables families", () => {
    expect(fenceSteps(planRuleset(base), "nft")).toEqual([{ tool: "nft", args: ["-f", "/proc/self/fd/0"], text: renderNft(planRuleset(base)) }]);
    expect(fenceSteps(planRuleset(base), "iptables").map((s) => s.tool)).toEqual(["iptables-restore", "ip6tables-restore"]);
  });
});

describe("renderIptables", () => {
  test("exact IPv4 input, kmsg", () => {
    const rs = planRuleset({ ...base, log: { kind: "kmsg", prefix: "proxywall:abcd1234:" } });
    expect(renderIptables(rs, "ipv4")).toBe(`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -p tcp -m limit --limit 100/sec --limit-burst 200 -j LOG --log-prefix "proxywall:abcd1234:" --log-level 4 --log-uid
-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset
-A OUTPUT -p udp -m limit --limit 100/sec --limit-burst 200 -j LOG --log-prefix "proxywall:abcd1234:" --log-level 4 --log-uid
-A OUTPUT -p udp -j REJECT --reject-with icmp-port-unreachable
-A OUTPUT -m limit --limit 100/sec --limit-burst 200 -j LOG --log-prefix "proxywall:abcd1234:" --log-level 4 --log-uid
-A OUTPUT -j DROP
COMMIT
`);
  });

  test("exact IPv6 input, NFLOG: neighbour discovery accepted before the rejects", () => {
    expect(renderIptables(planRuleset(base), "ipv6")).toBe(`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type router-solicitation -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 131 -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 143 -j ACCEPT
-A OUTPUT -p tcp -m limit --limit 100/sec --limit-burst 200 -j NFLOG --nflog-group 1 --nflog-prefix "proxywall:abcd1234:" --nflog-threshold 1
-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset
-A OUTPUT -p udp -m limit --limit 100/sec --limit-burst 200 -j NFLOG --nflog-group 1 --nflog-prefix "proxywall:abcd1234:" --nflog-threshold 1
-A OUTPUT -p udp -j REJECT --reject-with icmp6-port-unreachable
-A OUTPUT -m limit --limit 100/sec --limit-burst 200 -j NFLOG --nflog-group 1 --nflog-prefix "proxywall:abcd1234:" --nflog-threshold 1
-A OUTPUT -j DROP
COMMIT
`);
  });
});

describe("names", () => {
  test("the links live inside the namespace; the prefix fits iptables' 29 characters", () => {
    const n = sandboxNames("abcd1234");
    expect(n).toMatchObject({ netns: "pw-abcd1234", routeIf: "pw0", sinkIf: "pw1" });
    expect(n.logPrefix).toBe("proxywall:abcd1234:");
    expect(n.logPrefix.length).toBeLessThanOrEqual(IPTABLES_PREFIX_MAX);
  });
});

describe("holding TCP SYNs for attribution", () => {
  const held = planRuleset({ ...base, hold: HOLD_QUEUE });

  test("a hold chain of its own: exemptions, marked packets pass, then the rate-limited queue", () => {
    expect(held.hold.map((r) => r.comment)).toEqual([
      "loopback, including the resets the rejects below send",
      "replies",
      "held already: on to the fence",
      "hold tcp bypass for attribution",
    ]);
    expect(held.hold.at(-1)!.action).toEqual({ kind: "queue", num: 1, limit: { perSecond: 100, burst: 200 } });
  });

  test("the fence rejects marked (reported) packets before the log step, so none is reported twice", () => {
    const tcp = held.rules.filter((r) => r.proto === "tcp" && !r.daddr).map((r) => r.comment);
    expect(tcp).toEqual(["reject tcp bypass (held, attributed)", "log tcp bypass", "reject tcp bypass"]);
    expect(held.rules.some((r) => r.action.kind === "queue")).toBe(false);
  });

  test("nft: the hold chain runs before the fence chain", () => {
    const nft = renderNft(held);
    expect(nft).toContain(`table inet proxywall {
\tchain dns {
\t\ttype nat hook output priority -100; policy accept;
\t\tudp dport 53 redirect to :3053 comment "dns to proxywall's responder"
\t}
\tchain hold {
\t\ttype filter hook output priority -10; policy accept;
\t\toifname "lo" accept comment "loopback, including the resets the rejects below send"
\t\tct state established,related accept comment "replies"
\t\tmeta mark 0x70770001 accept comment "held already: on to the fence"
\t\tmeta l4proto tcp limit rate 100/second burst 200 packets queue num 1 bypass comment "hold tcp bypass for attribution"
\t}
\tchain output {
`);
    expect(nft).toContain(`\t\tmeta l4proto tcp meta mark 0x70770001 counter reject with tcp reset comment "reject tcp bypass (held, attributed)"\n\t\tmeta l4proto tcp limit rate 100/second`);
  });

  test("iptables: the hold chain is mangle OUTPUT, which runs before filter OUTPUT", () => {
    expect(renderIptables(held, "ipv6")).toStartWith(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 3053
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -m mark --mark 0x70770001 -j ACCEPT
-A OUTPUT -p tcp -m limit --limit 100/sec --limit-burst 200 -j NFQUEUE --queue-num 1 --queue-bypass
COMMIT
*filter
`);
    expect(renderIptables(held, "ipv4")).toContain(`-A OUTPUT -p tcp -m mark --mark 0x70770001 -j REJECT --reject-with tcp-reset\n-A OUTPUT -p tcp -m limit --limit 100/sec --limit-burst 200 -j NFLOG`);
  });

  test("DNS: redirected to the responder at the nat hook, and let through the fence (the hook keeps the first out interface); not without the feature", () => {
    expect(held.nat).toEqual([{ comment: "dns to proxywall's responder", proto: "udp", dport: 53, action: { kind: "redirect", port: HOLD_QUEUE.dnsPort } }]);
    const accepted = held.rules.filter((r) => r.dport === HOLD_QUEUE.dnsPort).map((r) => [r.family, r.daddr, r.action.kind]);
    expect(accepted).toEqual([
      ["ipv4", "127.0.0.1", "accept"],
      ["ipv6", "::1", "accept"],
    ]);
    expect(held.rules.findIndex((r) => r.dport === HOLD_QUEUE.dnsPort)).toBeLessThan(held.rules.findIndex((r) => r.comment === "reject udp bypass"));
    expect(renderIptables(held, "ipv4")).toContain("-A OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 3053 -j ACCEPT");
    const without = planRuleset({ ...base, hold: HOLD_QUEUE, features: { ...ALL_FEATURES, dns: false } });
    expect([without.nat, without.rules.some((r) => r.dport === HOLD_QUEUE.dnsPort)]).toEqual([[], false]);
    expect(planRuleset(base).nat).toEqual([]); // no watch thread, no responder
  });

  test("no queue feature: no hold chain, no mark rule", () => {
    const rs = planRuleset({ ...base, hold: HOLD_QUEUE, features: { ...ALL_FEATURES, queue: false } });
    expect(rs.hold).toEqual([]);
    expect(rs.rules.some((r) => r.mark !== undefined)).toBe(false);
  });
});

describe("monitor's log-only rules in a namespace proxywall did not build", () => {
  const observed = planObserve({ allow: [{ addr: "10.0.0.1", port: 3128 }], log: { kind: "nflog", group: 5, prefix: "proxywall:m:" }, logRate: 100, features: OBSERVE_FEATURES });

  test("they decide nothing: every rule returns or logs, in a chain of their own that runs first", () => {
    const text = renderObserveIptables(observed, "ipv4");
    expect(text).toStartWith("*mangle\n:PROXYWALL_MONITOR - [0:0]\n");
    expect(text).toContain("\n-I OUTPUT 1 -j PROXYWALL_MONITOR\nCOMMIT\n");
    const chainRules = text.split("\n").filter((l) => l.startsWith("-A PROXYWALL_MONITOR"));
    expect(chainRules).toHaveLength(5);
    for (const l of chainRules) expect(l).toMatch(/ -j (RETURN|NFLOG .*--nflog-group 5 .*)$/);
    expect(renderObserveNft(observed)).toContain("type filter hook output priority -5; policy accept;");
    expect(renderObserveNft(observed)).not.toMatch(/\b(drop|reject)\b/);
  });

  test("iptables-nft's own tables: listed, and dropped only when nothing but chains is left", () => {
    expect(listedTables("table ip mangle\ntable inet proxywall\n\n")).toEqual(new Set(["ip mangle", "inet proxywall"]));
    expect(listedTables("")).toEqual(new Set());
    const listing = (...items: object[]) => JSON.stringify({ nftables: [{ metainfo: { json_schema_version: 1 } }, { table: { family: "ip", name: "mangle" } }, ...items] });
    const chain = { chain: { family: "ip", table: "mangle", name: "OUTPUT", hook: "output", prio: -150 } };
    expect(isEmptyTable(listing(chain))).toBe(true);
    expect(isEmptyTable(listing(chain, { rule: { family: "ip", table: "mangle", chain: "OUTPUT", expr: [{ accept: null }] } }))).toBe(false);
    expect(isEmptyTable(listing(chain, { set: { family: "ip", table: "mangle", name: "s" } }))).toBe(false);
    for (const bad of ["", "not json", "{}", '{"nftables": 3}', '{"nftables": [1]}']) expect({ bad, empty: isEmptyTable(bad) }).toEqual({ bad, empty: false });
  });
});
