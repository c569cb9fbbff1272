// The fence check (src/fence/verify.ts) on real tool output: the plan's own fence text, and what
// iptables-legacy-save -c and nft list ruleset printed in a sandbox before and after a root CMD
// changed the fence (test/fixtures/fence, captured with nft 1.0.6 and iptables 1.8.9 legacy; the
// log prefixes were set to one sandbox id).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fenceChanges, imageFromIptables, imageFromNft, imageOf, planImage } from "../src/fence/verify.ts";
import type { FenceStep } from "../src/plan/sandbox-plan.ts";

const fixture = (name: string) => readFileSync(join(import.meta.dir, "fixtures/fence", name), "utf8");
const IPT = fixture("iptables-intact.txt");
const IP6T = fixture("ip6tables-intact.txt");
const step = (tool: FenceStep["tool"]): FenceStep => ({ tool, args: [], text: fixture(`plan-${tool}.txt`) });
const IPTABLES_PLAN = planImage([step("iptables-restore"), step("ip6tables-restore")]);
const NFT_PLAN = planImage([step("nft")]);

describe("images of real listings", () => {
  test("iptables-save -c: counters out, built-in chains that accept and hold nothing left out", () => {
    const image = imageFromIptables("ipv4", IPT);
    expect([...image.keys()].sort()).toEqual(["ipv4 filter OUTPUT", "ipv4 mangle OUTPUT"]);
    const out = image.get("ipv4 filter OUTPUT")!;
    expect(out.policy).toBe("DROP");
    expect(out.rules[0]).toBe("-A OUTPUT -o lo -j ACCEPT");
    expect(out.rules.every((r) => !/\[\d+:\d+\]/.test(r))).toBe(true);
  });

  test("nft list ruleset: counters and handles out, the chain's type line is its policy", () => {
    const intact = imageFromNft(fixture("nft-intact.txt"));
    const out = intact.get("inet proxywall output")!;
    expect(out.policy).toBe("type filter hook output priority filter; policy drop;");
    expect(out.rules.filter((r) => r.includes("counter"))).not.toHaveLength(0);
    expect(out.rules.some((r) => /counter packets/.test(r))).toBe(false);
    // the same ruleset listed with handles (-a) is the same image
    const handles = imageFromNft(fixture("nft-inserted-handles.txt"));
    expect(handles).toEqual(imageFromNft(fixture("nft-inserted.txt")));
  });
});

describe("the fence read back right after install is the planned one", () => {
  test("iptables: the tool reorders options and prints ICMPv6 types as numbers; targets and policies match", () => {
    expect(fenceChanges(IPTABLES_PLAN, imageOf("iptables", [IPT, IP6T]), false)).toEqual([]);
  });

  test("nft: rule comments and policies match", () => {
    expect(fenceChanges(NFT_PLAN, imageOf("nft", [fixture("nft-intact.txt")]), false)).toEqual([]);
  });
});

describe("what changed", () => {
  const installed = imageOf("iptables", [IPT, IP6T]);

  test("nothing: the same listing with other counters", () => {
    const later = IPT.replace(/^\[\d+:\d+\]/gm, "[99:9999]");
    expect(fenceChanges(installed, imageOf("iptables", [later, IP6T]), true)).toEqual([]);
  });

  test("mangle flushed, OUTPUT flushed, policy ACCEPT: both chains gone", () => {
    const changes = fenceChanges(installed, imageOf("iptables", [fixture("iptables-flushed.txt"), IP6T]), true);
    expect(changes).toEqual([
      expect.stringMatching(/^ipv4 filter OUTPUT: gone or empty and accepting \(it had \d+ rules, policy DROP\)$/),
      expect.stringMatching(/^ipv4 mangle OUTPUT: gone or empty and accepting \(it had \d+ rules, policy ACCEPT\)$/),
    ]);
    // The plan's view says the same of a flushed fence.
    expect(fenceChanges(IPTABLES_PLAN, imageOf("iptables", [fixture("iptables-flushed.txt"), IP6T]), false)).toHaveLength(2);
  });

  test("a table only listed (loaded, empty, accepting) is no change", () => {
    const flushed = imageOf("iptables", [fixture("iptables-flushed.txt"), IP6T]);
    expect(imageOf("iptables", [fixture("iptables-flushed-nat-listed.txt"), IP6T])).toEqual(flushed);
  });

  test("policy ACCEPT alone", () => {
    const accepting = IPT.replace(":OUTPUT DROP", ":OUTPUT ACCEPT");
    expect(fenceChanges(installed, imageOf("iptables", [accepting, IP6T]), true)).toEqual(["ipv4 filter OUTPUT: policy ACCEPT (was DROP)"]);
    expect(fenceChanges(IPTABLES_PLAN, imageOf("iptables", [accepting, IP6T]), false)).toEqual(["ipv4 filter OUTPUT: policy ACCEPT (was DROP)"]);
  });

  test("one rule deleted (the IPv6 TCP reject)", () => {
    const lines = IP6T.split("\n");
    const i = lines.findIndex((l) => l.endsWith("-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset"));
    expect(i).toBeGreaterThan(0);
    const deleted = [...lines.slice(0, i), ...lines.slice(i + 1)].join("\n");
    expect(fenceChanges(installed, imageOf("iptables", [IPT, deleted]), true)).toEqual(['ipv6 filter OUTPUT: 1 rule removed ("-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset")']);
    expect(fenceChanges(IPTABLES_PLAN, imageOf("iptables", [IPT, deleted]), false)).toEqual(['ipv6 filter OUTPUT: 1 rule removed ("REJECT")']);
  });

  test("an ACCEPT inserted first (nft), seen by both views", () => {
    const inserted = imageOf("nft", [fixture("nft-inserted.txt")]);
    expect(fenceChanges(imageOf("nft", [fixture("nft-intact.txt")]), inserted, true)).toEqual(['inet proxywall output: 1 rule added ("oifname "pw0" accept")']);
    expect(fenceChanges(NFT_PLAN, inserted, false)).toEqual(['inet proxywall output: 1 rule added ("oifname "pw0" accept")']);
  });

  test("a rule replaced by another with the same target: only the exact view sees it", () => {
    const replaced = IPT.replace("-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset", "-A OUTPUT -p sctp -j REJECT --reject-with tcp-reset");
    expect(fenceChanges(IPTABLES_PLAN, imageOf("iptables", [replaced, IP6T]), false)).toEqual([]);
    expect(fenceChanges(installed, imageOf("iptables", [replaced, IP6T]), true)).toEqual([
      'ipv4 filter OUTPUT: 1 rule removed ("-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset")',
      'ipv4 filter OUTPUT: 1 rule added ("-A OUTPUT -p sctp -j REJECT --reject-with tcp-reset")',
    ]);
  });

  test("rules reordered; a chain of the caller's own added; the nft table deleted", () => {
    const lines = IPT.split("\n");
    const a = lines.findIndex((l) => l.includes("-A OUTPUT -p udp -j REJECT"));
    [lines[a], lines[a - 1]] = [lines[a - 1]!, lines[a]!];
    expect(fenceChanges(installed, imageOf("iptables", [lines.join("\n"), IP6T]), true)).toEqual(["ipv4 filter OUTPUT: rules reordered"]);
    const own = IPT.replace(":OUTPUT DROP [0:0]", ":OUTPUT DROP [0:0]\n:mine - [0:0]").replace("COMMIT", "[0:0] -A mine -j ACCEPT\nCOMMIT");
    expect(fenceChanges(installed, imageOf("iptables", [own, IP6T]), true)).toEqual(["ipv4 filter mine: added (1 rules, policy -)"]);
    expect(fenceChanges(imageOf("nft", [fixture("nft-intact.txt")]), imageOf("nft", [""]), true)).toEqual([expect.stringMatching(/^inet proxywall output: gone or empty and accepting \(it had \d+ rules, policy type filter hook output priority filter; policy drop;\)$/)]);
  });
});
