// What the kernel can hold, asked without installing anything: one ruleset of probe rules, each
// needing one optional feature (or none: the core of the fence), rendered by the very renderers
// the fence uses and fed to the tool in check-only mode. Pure: building the probe text and
// reading the tool's answer; select.ts runs the tools.
//
// One run answers for every feature at once:
//  - `nft -c` hands the batch to the kernel and reports every rule it refuses, each with its line
//    ("FILE:4:20-24: Error: Could not process rule: No such file or directory");
//  - `iptables-restore -t` asks the kernel about each extension it loads and warns about each one
//    the kernel lacks ("Warning: Extension NFQUEUE revision 0 not supported, missing kernel
//    module?"), exit status 0 all the same.
import { iptablesRules, renderIptables } from "../plan/render-iptables.ts";
import { renderNft } from "../plan/render-nft.ts";
import { HOLD_QUEUE, planRuleset, type Family, type Features, type LogTarget, type Rule } from "../plan/ruleset.ts";

/** What a probe rule needs besides the core: a feature, or one log target (the log feature). */
export type ProbeKey = "core" | "conntrack" | "nflog" | "kmsg" | "queue" | "limit" | "dns";

export type WatchLog = Exclude<LogTarget["kind"], "none">;

export interface Probe {
  key: ProbeKey;
  /** For limit: the probe whose action it limits; limit is asked about only where that works. */
  base: ProbeKey | null;
  rule: Rule;
  /** In the hold chain (the mangle table for iptables). */
  hold: boolean;
  /** In the nat chain (the nat table for iptables): DNS's redirect. */
  nat?: boolean;
}

/** The features a probe needs answered, for the log targets and hold asked for. */
export interface ProbeWants {
  logs: readonly WatchLog[];
  hold: boolean;
}

export const PROBE_TABLE = "proxywall_probe";
const PROBE_LOG: Record<WatchLog, LogTarget & { kind: WatchLog }> = {
  nflog: { kind: "nflog", group: 1, prefix: "proxywall:00000000:" },
  kmsg: { kind: "kmsg", prefix: "proxywall:00000000:" },
};
const NONE: Features = { conntrack: false, log: false, limit: false, queue: false, dns: false };
const LIMIT = { perSecond: 1, burst: 2 };

/** The probe rules: the fence without optional features, then one rule per feature asked about. */
export function probeRules(wants: ProbeWants): Probe[] {
  const probes: Probe[] = planRuleset({ log: { kind: "none" }, hold: null, logRate: 1, features: NONE }).rules.map((rule) => ({ key: "core", base: null, rule, hold: false }));
  const add = (key: ProbeKey, rule: Omit<Rule, "comment">, hold = false, base: ProbeKey | null = null) => probes.push({ key, base, rule: { ...rule, comment: "" }, hold });
  add("conntrack", { ctState: ["established", "related"], action: { kind: "accept" } });
  for (const log of wants.logs) {
    add(log, { proto: "tcp", action: { kind: "log", target: PROBE_LOG[log], limit: null } });
    add("limit", { proto: "tcp", action: { kind: "log", target: PROBE_LOG[log], limit: LIMIT } }, false, log);
  }
  if (wants.hold) {
    add("queue", { mark: HOLD_QUEUE.mark, action: { kind: "accept" } }, true);
    add("queue", { proto: "tcp", action: { kind: "queue", num: HOLD_QUEUE.num, limit: null } }, true);
    add("queue", { proto: "tcp", mark: HOLD_QUEUE.mark, action: { kind: "reject-tcp-reset" } });
    add("limit", { proto: "tcp", action: { kind: "queue", num: HOLD_QUEUE.num, limit: LIMIT } }, true, "queue");
    probes.push({ key: "dns", base: null, rule: { comment: "", proto: "udp", dport: 53, action: { kind: "redirect", port: HOLD_QUEUE.dnsPort } }, hold: false, nat: true });
  }
  // Comments tell the rules apart, so that nft's line numbers lead back to each.
  return probes.map((p, i) => ({ ...p, rule: { ...p.rule, comment: `${p.rule.comment || p.key} probe ${i}` } }));
}

const ruleset = (probes: readonly Probe[]) => ({
  rules: probes.filter((p) => !p.hold && !p.nat).map((p) => p.rule),
  hold: probes.filter((p) => p.hold).map((p) => p.rule),
  nat: probes.filter((p) => p.nat).map((p) => p.rule),
});

/** The probe table for `nft -c`; a name of its own, since the check runs in proxywall's own namespace. */
export function nftProbeText(probes: readonly Probe[]): string {
  return renderNft(ruleset(probes), PROBE_TABLE);
}

/**
 * The probes nft refused, each with nft's message, from its error locations; null when it named
 * no probe (a failure of another kind: no permission, a syntax error, no nf_tables at all).
 */
export function nftRefused(probes: readonly Probe[], text: string, stderr: string): Map<number, string> | null {
  const lines = text.split("\n");
  const refused = new Map<number, string>();
  for (const m of stderr.matchAll(/^[^\n]*?:(\d+):\d+(?:-\d+)?: (Error[^\n]*)/gm)) {
    const line = lines[Number(m[1]) - 1] ?? "";
    const i = probes.findIndex((p) => line.includes(`"${p.rule.comment}"`));
    if (i < 0) return null;
    refused.set(i, m[2]!);
  }
  return refused.size > 0 ? refused : null;
}

export function iptablesProbeText(probes: readonly Probe[], family: Family): string {
  return renderIptables(ruleset(probes), family);
}

/** The iptables extensions (-m MATCH, -j TARGET) a probe's rule loads in one family. */
function extensions(p: Probe, family: Family): Set<string> {
  const lines = iptablesRules(p.rule, family);
  return new Set(lines.flatMap((l) => [...l.matchAll(/(?:^| )-[mj] (\S+)/g)].map((m) => m[1]!)));
}

/** The extensions iptables-restore -t warned the kernel lacks. */
export function missingExtensions(stderr: string): string[] {
  return [...stderr.matchAll(/Extension (\S+) revision \d+ not supported/g)].map((m) => m[1]!);
}

/** The probes that load an extension the kernel lacks, each with the tool's words about it. */
export function iptablesRefused(probes: readonly Probe[], family: Family, missing: readonly string[]): Map<number, string> {
  const refused = new Map<number, string>();
  probes.forEach((p, i) => {
    const ext = extensions(p, family);
    const gone = missing.filter((m) => ext.has(m));
    if (gone.length > 0) refused.set(i, gone.map((m) => `Extension ${m} not supported, missing kernel module?`).join("; "));
  });
  return refused;
}

/**
 * Which probe keys the kernel cannot hold ("core": not even the rejects), with the tool's words
 * about each. A rate limit counts as missing only where the action it limits works.
 */
export function unsupportedKeys(probes: readonly Probe[], refused: ReadonlyMap<number, string>): Map<ProbeKey, string> {
  const out = new Map<ProbeKey, string>();
  for (const [i, said] of refused) if (probes[i]!.key !== "limit" && !out.has(probes[i]!.key)) out.set(probes[i]!.key, said);
  for (const [i, said] of refused) {
    const p = probes[i]!;
    if (p.key === "limit" && p.base && !out.has(p.base) && !out.has("limit")) out.set("limit", said);
  }
  return out;
}

/**
 * The features a plan for `log` (and the hold, with NFLOG) gets, and the wanted ones it lacks.
 * DNS's redirect comes with the hold: its responder lives on the same watch thread.
 */
export function featuresFor(unsupported: { has(k: ProbeKey): boolean }, log: LogTarget["kind"], hold: boolean): { features: Features; missing: (keyof Features)[] } {
  const wanted: Features = { conntrack: true, log: log !== "none", queue: hold && log === "nflog", limit: false, dns: hold && log === "nflog" };
  wanted.limit = wanted.log || wanted.queue;
  const can: Features = {
    conntrack: !unsupported.has("conntrack"),
    log: log !== "none" && !unsupported.has(log),
    queue: !unsupported.has("queue"),
    limit: !unsupported.has("limit"),
    dns: !unsupported.has("dns") && !unsupported.has("conntrack"),
  };
  const keys = Object.keys(wanted) as (keyof Features)[];
  const features = Object.fromEntries(keys.map((k) => [k, wanted[k] && can[k]])) as unknown as Features;
  return { features, missing: keys.filter((k) => wanted[k] && !can[k]) };
}
