// Is the fence still the one installed? A root CMD (or anything else with CAP_NET_ADMIN over the
// sandbox namespace) can flush it, set a chain's policy to accept, delete a rule or insert an
// accept in front of the rejects. At every summary and at teardown the session reads the ruleset
// back and compares it, as data, with two references:
//  - the plan's own fence text, parsed the same way: the chains the plan made must be there with
//    their policy and their rules in order, each known by what survives the tool's own way of
//    printing it (nft keeps a rule's comment; iptables-save reorders options, so a rule is known
//    by its target);
//  - the ruleset as read back right after it was installed, before CMD started: every chain, every
//    rule exactly as the tool prints it, counters and handles taken out. This catches what the
//    plan's coarser view cannot (a rule replaced by another with the same target).
// Pure functions of text, but for readFence; tests feed them real tool output.
import type { Backend, FenceStep } from "../plan/sandbox-plan.ts";
import { inNetns } from "../sys/netns.ts";
import { findTool, startTool } from "../sys/tools.ts";
import { iptablesSaveTools } from "./install.ts";
import { totalsFromIptablesSave, totalsFromNftText, totalsSince, type RejectTotals } from "../monitor/rule-counters.ts";

/** One chain (or another block of a table, such as an nft set) as the tool prints it. */
export interface Chain {
  /** iptables: ACCEPT/DROP ("-" for a chain of one's own); nft: the chain's `type ...` line. */
  policy: string | null;
  /** Each rule, counters and handles taken out. */
  rules: string[];
}

/** Chains by "FAMILY TABLE CHAIN" (iptables: "ipv4 filter OUTPUT"; nft: "inet proxywall output"). */
export type FenceImage = Map<string, Chain>;

/**
 * iptables-save (or iptables-restore input) as an image. A built-in chain with policy ACCEPT and
 * no rules is as good as absent (listing a table loads it that way), so it is left out.
 */
export function imageFromIptables(family: "ipv4" | "ipv6", text: string): FenceImage {
  const image: FenceImage = new Map();
  let table = "";
  const chain = (name: string) => {
    const key = `${family} ${table} ${name}`;
    let c = image.get(key);
    if (!c) image.set(key, (c = { policy: null, rules: [] }));
    return c;
  };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) table = line.slice(1);
    else if (line.startsWith(":")) {
      const [name, policy] = line.slice(1).split(" ");
      chain(name!).policy = policy ?? null;
    } else {
      // `-c` puts [packets:bytes] in front of each rule.
      const rule = line.replace(/^\[\d+:\d+\]\s+/, "");
      const m = /^-A (\S+)/.exec(rule);
      if (m) chain(m[1]!).rules.push(rule);
    }
  }
  for (const [key, c] of image) if (c.rules.length === 0 && (c.policy === "ACCEPT" || c.policy === "-")) image.delete(key);
  return image;
}

/** `nft list ruleset` (or an nft -f script of the same shape) as an image; counters and handles taken out. */
export function imageFromNft(text: string): FenceImage {
  const image: FenceImage = new Map();
  let table: string | null = null;
  let block: Chain | null = null;
  for (const raw of text.split("\n")) {
    const line = raw
      .replace(/\s*# handle \d+\s*$/, "")
      .replace(/\bcounter packets \d+ bytes \d+/g, "counter")
      .trim();
    if (line === "") continue;
    const open = /^(\S+)\s+(.+?)\s*\{$/.exec(line);
    if (open && table === null && open[1] === "table") {
      table = open[2]!;
    } else if (open && table !== null && block === null) {
      // chain NAME, set NAME, map NAME, flowtable NAME...
      block = { policy: null, rules: [] };
      image.set(`${table} ${open[1] === "chain" ? open[2] : `${open[1]} ${open[2]}`}`, block);
    } else if (line === "}") {
      if (block) block = null;
      else table = null;
    } else if (block) {
      if (block.policy === null && /^type \S+ hook /.test(line)) block.policy = line;
      else block.rules.push(line);
    }
  }
  return image;
}

/** The fence the plan installs, as an image (the fence steps' own text). */
export function planImage(steps: readonly FenceStep[]): FenceImage {
  const image: FenceImage = new Map();
  for (const step of steps) {
    const part = step.tool === "nft" ? imageFromNft(step.text) : imageFromIptables(step.tool === "ip6tables-restore" ? "ipv6" : "ipv4", step.text);
    for (const [k, c] of part) image.set(k, c);
  }
  return image;
}

/** What the tools print back unchanged: an nft rule's comment, an iptables rule's target. */
function planView(chain: Chain): Chain {
  const policy = chain.policy === null ? null : (/policy (\w+);/.exec(chain.policy)?.[1] ?? chain.policy);
  const rules = chain.rules.map((r) => /comment "([^"]*)"\s*$/.exec(r)?.[1] ?? /(?:^|\s)-j (\S+)/.exec(r)?.[1] ?? r);
  return { policy, rules };
}

const quoteRule = (r: string) => (r.length > 120 ? `"${r.slice(0, 117)}..."` : `"${r}"`);

/** How one chain differs, in words; empty when it does not. */
function chainChanges(key: string, was: Chain, now: Chain): string[] {
  const out: string[] = [];
  if (was.policy !== now.policy) out.push(`${key}: policy ${now.policy ?? "none"} (was ${was.policy ?? "none"})`);
  const left = [...now.rules];
  const removed: string[] = [];
  for (const r of was.rules) {
    const i = left.indexOf(r);
    if (i >= 0) left.splice(i, 1);
    else removed.push(r);
  }
  const n = (k: number) => `${k} rule${k === 1 ? "" : "s"}`;
  if (removed.length > 0) out.push(`${key}: ${n(removed.length)} removed (${removed.slice(0, 3).map(quoteRule).join(", ")}${removed.length > 3 ? ", ..." : ""})`);
  if (left.length > 0) out.push(`${key}: ${n(left.length)} added (${left.slice(0, 3).map(quoteRule).join(", ")}${left.length > 3 ? ", ..." : ""})`);
  if (removed.length === 0 && left.length === 0 && was.rules.join("\n") !== now.rules.join("\n")) out.push(`${key}: rules reordered`);
  return out;
}

/**
 * What differs between the image expected and the one read now, one phrase per change; empty
 * when nothing does. `exact` compares every chain rule by rule (against the image read right
 * after install); otherwise only the chains `expected` has, as the plan can know them.
 */
export function fenceChanges(expected: FenceImage, now: FenceImage, exact: boolean): string[] {
  const out: string[] = [];
  for (const [key, was] of expected) {
    const is = now.get(key);
    if (!is) out.push(`${key}: gone or empty and accepting (it had ${was.rules.length} rules${was.policy ? `, policy ${exact ? was.policy : planView(was).policy}` : ""})`);
    else out.push(...(exact ? chainChanges(key, was, is) : chainChanges(key, planView(was), planView(is))));
  }
  if (exact) for (const [key, is] of now) if (!expected.has(key)) out.push(`${key}: added (${is.rules.length} rules${is.policy ? `, policy ${is.policy}` : ""})`);
  return out;
}

/** The tool's own listing of the namespace's firewall: one text (nft), or IPv4 then IPv6 (iptables-save -c). */
export async function readFence(nsPath: string, backend: Backend): Promise<{ texts: string[] } | { error: string }> {
  try {
    if (backend === "nft") {
      const nft = findTool("nft");
      if (!nft) return { error: "nft is not installed" };
      const r = await inNetns(nsPath, () => startTool(nft, ["list", "ruleset"]));
      return r.code === 0 ? { texts: [r.stdout] } : { error: `nft list ruleset: ${r.stderr.trim() || `exit ${r.code}`}` };
    }
    const tools = iptablesSaveTools(nsPath);
    if (!tools) return { error: "iptables-save and ip6tables-save are not installed" };
    const runs = await Promise.all(tools.map((t) => inNetns(nsPath, () => startTool(t, ["-c"]))));
    const failed = runs.findIndex((r) => r.code !== 0);
    if (failed >= 0) return { error: `${tools[failed]} -c: ${runs[failed]!.stderr.trim() || `exit ${runs[failed]!.code}`}` };
    return { texts: runs.map((r) => r.stdout) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** A listing as an image. */
export function imageOf(backend: Backend, texts: readonly string[]): FenceImage {
  if (backend === "nft") return imageFromNft(texts[0] ?? "");
  const image = imageFromIptables("ipv4", texts[0] ?? "");
  for (const [k, c] of imageFromIptables("ipv6", texts[1] ?? "")) image.set(k, c);
  return image;
}

/** Counters from a listing: the same read as the check, so totals and verdict agree. */
function totalsOf(backend: Backend, texts: readonly string[]): RejectTotals {
  return backend === "nft" ? totalsFromNftText(texts[0] ?? "") : totalsFromIptablesSave(texts);
}

export interface CheckResult {
  /** Rejected packets since the fence was read back before CMD; null when unreadable or changed. */
  totals: RejectTotals | null;
  /** A change (or an unreadable fence) not said before, as one sentence for a degraded line. */
  news: string | null;
}

/**
 * The fence of one run, read back: first right after it was installed (compared with the plan;
 * the reference for every later check), then at every summary and at teardown.
 */
export class FenceCheck {
  /** When a change was first seen (RFC 3339), or null while the fence is intact. */
  changedAt: string | null = null;
  private intactAt: string;
  private said = "";

  private constructor(
    private readonly nsPath: string,
    private readonly backend: Backend,
    private readonly planned: FenceImage,
    private readonly installed: { image: FenceImage; totals: RejectTotals } | null,
    readonly problem: string | null,
  ) {
    this.intactAt = new Date().toISOString();
  }

  /** Reads the fence as installed; `problem` says when it cannot be read or is not the plan's. */
  static async start(nsPath: string, backend: Backend, steps: readonly FenceStep[]): Promise<FenceCheck> {
    const planned = planImage(steps);
    const read = await readFence(nsPath, backend);
    if ("error" in read) return new FenceCheck(nsPath, backend, planned, null, `the fence cannot be read back (${read.error}), so changes to it are seen only where the plan can tell`);
    const image = imageOf(backend, read.texts);
    const diff = fenceChanges(planned, image, false);
    const problem = diff.length === 0 ? null : `the fence read back after installing it is not the planned one: ${diff.join("; ")}`;
    return new FenceCheck(nsPath, backend, planned, { image, totals: totalsOf(backend, read.texts) }, problem);
  }

  async check(): Promise<CheckResult> {
    const now = new Date().toISOString();
    const read = await readFence(this.nsPath, this.backend);
    if ("error" in read) return { totals: null, news: this.say(`the fence cannot be read back (${read.error}) at ${now}`, `unreadable: ${read.error}`) };
    const image = imageOf(this.backend, read.texts);
    const changes = this.installed ? fenceChanges(this.installed.image, image, true) : fenceChanges(this.planned, image, false);
    if (changes.length === 0 && this.changedAt === null) {
      this.intactAt = now;
      return { totals: totalsSince(totalsOf(this.backend, read.texts), this.installed?.totals ?? null), news: null };
    }
    this.changedAt ??= now;
    // Still changed, but no longer different from the installed fence (put back): say that too.
    const what = changes.length === 0 ? "it is as installed again, but was changed in between" : changes.join("; ");
    return { totals: null, news: this.say(`the fence was changed after it was installed (first seen ${this.changedAt}, intact at ${this.intactAt}, checked ${now}): ${what}`, what) };
  }

  /** Each distinct finding once. */
  private say(sentence: string, key = sentence): string | null {
    if (key === this.said) return null;
    this.said = key;
    return sentence;
  }
}
