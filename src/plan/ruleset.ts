// The sandbox firewall as pure data: what each rule matches and does, in order. Renderers turn
// it into an nftables script or iptables-restore input; nothing here touches the system.
//
// Order matters:
//  1. loopback first: the reset a TCP reject sends travels over lo, and a reject that caught it
//     would leave the client hanging for about two minutes;
//  2. replies (established/related);
//  3. IPv6 neighbour discovery on the sink link, so the kernel's own solicitations are not
//     counted as bypasses;
//  4. every other TCP and UDP connection: a rate-limited log step, then a reject that fails fast
//     (TCP reset: ICMP would cost blocking and IPv6 clients a one-second retransmit);
//  5. everything else (other protocols: ICMP echo, UDP-Lite, SCTP, ...) is logged (rate-limited)
//     and dropped, and counted.
//
// With the watch thread, a "dns" chain at the nat hook (before both) redirects every UDP DNS query,
// whatever its server (loopback ones too), to proxywall's DNS responder on the sandbox's own
// loopback. It answers REFUSED at once, so the client fails as fast as at a reject; and since the
// client waits for that answer, its socket still exists while proxywall names it (a reject
// fails sendto with EPERM, and getaddrinfo closes the socket within a fraction of a millisecond,
// before a lookup made after the log message finds it).
//
// The proxy needs no rule of its own: its door is on the sandbox's own loopback (rule 1), and the
// sandbox has no host side that a rule would have to open.
//
// With attribution on, a separate "hold" chain runs first (an earlier priority) and puts each new
// TCP SYN that the fence will reject into an NFQUEUE, so proxywall can name the process while its
// socket still exists. It must be a chain of its own: when nobody listens, "queue ... bypass"
// ACCEPTS the packet for the rest of its chain (it does not fall through to the next rule), so in
// the fence chain it would let the SYN out. Here, that accept only ends the hold chain, and the
// fence chain still rejects. proxywall's verdict repeats the hook with a mark; the hold chain lets
// marked packets pass, and the fence chain rejects them without logging them a second time.

export type Family = "ipv4" | "ipv6";

export type LogTarget =
  | { kind: "nflog"; group: number; prefix: string }
  | { kind: "kmsg"; prefix: string }
  | { kind: "none" };

export interface Features {
  /** conntrack (ct state): without it replies to inbound connections are not let through. */
  conntrack: boolean;
  /** The log step (NFLOG or LOG target). */
  log: boolean;
  /** Rate limiting of the log step. */
  limit: boolean;
  /** NFQUEUE, to hold TCP SYNs for attribution. */
  queue: boolean;
  /** NAT redirect (nft redirect / xt REDIRECT in the nat table), to send DNS to proxywall's responder. */
  dns: boolean;
}

export const ALL_FEATURES: Features = { conntrack: true, log: true, limit: true, queue: true, dns: true };

/**
 * What the watch thread serves: the queue TCP SYNs are held in, the mark proxywall's verdict puts
 * on them, and the port of its DNS responder on the sandbox's loopback (127.0.0.1 and ::1).
 */
export interface HoldQueue {
  num: number;
  mark: number;
  dnsPort: number;
}

/** Per namespace, so fixed numbers serve every sandbox. */
export const HOLD_QUEUE: HoldQueue = { num: 1, mark: 0x70770001, dnsPort: 3053 };

export interface RulesetInput {
  log: LogTarget;
  /** Log (and hold) at most this many packets per second per protocol (burst twice that). */
  logRate: number;
  /** Hold TCP SYNs for attribution; null to only log them. */
  hold: HoldQueue | null;
  features: Features;
}

export interface Limit {
  perSecond: number;
  burst: number;
}

export type Action =
  | { kind: "accept" }
  | { kind: "log"; target: Exclude<LogTarget, { kind: "none" }>; limit: Limit | null }
  | { kind: "queue"; num: number; limit: Limit | null }
  | { kind: "reject-tcp-reset" }
  | { kind: "reject-port-unreachable" }
  | { kind: "redirect"; port: number }
  | { kind: "drop" };

export interface Rule {
  /** Why the rule is there; also its comment in the rendered ruleset. */
  comment: string;
  /** Only this family; absent means both. */
  family?: Family;
  oif?: string;
  ctState?: readonly string[];
  proto?: "tcp" | "udp" | "icmp";
  daddr?: string;
  dport?: number;
  /** Packet mark (proxywall's verdict on a held packet). */
  mark?: number;
  /** ICMPv6 types by nft name. */
  icmpv6Types?: readonly string[];
  /** Count packets (the totals behind bypass summaries). */
  counter?: boolean;
  action: Action;
}

export interface Ruleset {
  /** The fence: the output chain, policy drop. */
  rules: Rule[];
  /** The hold chain (runs before the fence; policy accept); empty without attribution. */
  hold: Rule[];
  /** The nat chain (output hook, before both): DNS to proxywall's responder; empty without it. */
  nat: Rule[];
}

/** ICMPv6 messages that neighbour discovery and multicast listener reports need. */
export const ND_TYPES = [
  "nd-router-solicit",
  "nd-neighbor-solicit",
  "nd-neighbor-advert",
  "mld-listener-report",
  "mld2-listener-report",
] as const;

export function planRuleset(input: RulesetInput): Ruleset {
  const { features } = input;
  const rules: Rule[] = [{ comment: "loopback, including the resets the rejects below send", oif: "lo", action: { kind: "accept" } }];
  if (features.conntrack) {
    rules.push({ comment: "replies", ctState: ["established", "related"], action: { kind: "accept" } });
  }
  rules.push({ comment: "neighbour discovery", family: "ipv6", icmpv6Types: ND_TYPES, action: { kind: "accept" } });
  const exempt = rules.slice();
  const limit = features.limit ? { perSecond: input.logRate, burst: input.logRate * 2 } : null;
  const hold: Rule[] = [];
  const held = input.hold && features.queue ? input.hold : null;
  for (const proto of ["tcp", "udp"] as const) {
    if (proto === "tcp" && held) {
      hold.push(
        // What the fence lets through is never held.
        ...exempt.filter((r) => !r.icmpv6Types),
        { comment: "held already: on to the fence", mark: held.mark, action: { kind: "accept" } },
        { comment: "hold tcp bypass for attribution", proto, action: { kind: "queue", num: held.num, limit } },
      );
      rules.push({ comment: "reject tcp bypass (held, attributed)", proto, mark: held.mark, counter: true, action: { kind: "reject-tcp-reset" } });
    }
    if (features.log && input.log.kind !== "none") {
      rules.push({ comment: `log ${proto} bypass`, proto, action: { kind: "log", target: input.log, limit } });
    }
    rules.push({
      comment: `reject ${proto} bypass`,
      proto,
      counter: true,
      action: { kind: proto === "tcp" ? "reject-tcp-reset" : "reject-port-unreachable" },
    });
  }
  if (features.log && input.log.kind !== "none") {
    rules.push({ comment: "log other protocols", action: { kind: "log", target: input.log, limit } });
  }
  rules.push({ comment: "everything else", counter: true, action: { kind: "drop" } });
  const nat: Rule[] = held && features.dns && features.conntrack ? [{ comment: "dns to proxywall's responder", proto: "udp", dport: 53, action: { kind: "redirect", port: held.dnsPort } }] : [];
  if (held && nat.length > 0) {
    // A redirected query keeps the out interface it was routed to first (the hook's state is
    // fixed before the nat rule reroutes it to lo), so the loopback rule does not see it.
    const to = (family: Family, daddr: string): Rule => ({ comment: "dns redirected to proxywall's responder", family, proto: "udp", daddr, dport: held.dnsPort, action: { kind: "accept" } });
    rules.splice(1, 0, to("ipv4", "127.0.0.1"), to("ipv6", "::1"));
  }
  return { rules, hold, nat };
}
