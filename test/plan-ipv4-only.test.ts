// A sandbox without IPv6 (a kernel without it, or a namespace that keeps it switched off): the plan
// has no IPv6 step at all, since ip6tables-restore fails where the kernel has no IPv6. Pure, no root.
import { describe, expect, test } from "bun:test";
import { ALL_FEATURES, HOLD_QUEUE, planRuleset, type Rule } from "../src/plan/ruleset.ts";
import { fenceSteps, ipv4Only, planSandbox, renderPlan, watchRules, type SandboxConfig } from "../src/plan/sandbox-plan.ts";

const config = (ipv6: boolean, backend: SandboxConfig["backend"]): SandboxConfig => ({
  id: "0123abcd",
  proxyPort: 3128,
  ipv6,
  backend,
  ...watchRules("nflog", 1, "proxywall:0123abcd:"),
  logRate: 100,
  features: ALL_FEATURES,
});

const ruleset = planRuleset({ log: { kind: "nflog", group: 1, prefix: "p:" }, hold: HOLD_QUEUE, logRate: 100, features: ALL_FEATURES });

describe("a sandbox without IPv6", () => {
  test("iptables: only iptables-restore, with the same IPv4 text as a dual-stack sandbox", () => {
    const v4 = planSandbox(config(false, "iptables"));
    const dual = planSandbox(config(true, "iptables"));
    expect(dual.fence.map((s) => s.tool)).toEqual(["iptables-restore", "ip6tables-restore"]);
    expect(v4.fence.map((s) => s.tool)).toEqual(["iptables-restore"]);
    expect(v4.fence[0]).toEqual(dual.fence[0]!);
    expect(v4.fence[0]!.text).toContain("-j REJECT --reject-with tcp-reset");
    expect(v4.fence[0]!.text).not.toContain("icmp6");
  });

  test("nft: one script without IPv6-only rules; the rejects and their counters stay", () => {
    const [v4] = planSandbox(config(false, "nft")).fence;
    const [dual] = planSandbox(config(true, "nft")).fence;
    expect(dual!.text).toContain("icmpv6 type");
    expect(v4!.tool).toBe("nft");
    expect(v4!.text).not.toContain("icmpv6");
    expect(v4!.text).not.toContain("ip6 ");
    for (const comment of ["reject tcp bypass", "reject udp bypass", "everything else", "loopback, including the resets"]) {
      expect(v4!.text).toContain(comment);
    }
    // Only IPv6 rules go (neighbour discovery among them): every other line is the dual-stack one.
    const dropped = dual!.text.split("\n").filter((l) => !v4!.text.split("\n").includes(l));
    expect(dropped).toContainEqual(expect.stringContaining(`comment "neighbour discovery"`));
    for (const line of dropped) expect(line).toMatch(/\bicmpv6 |\bip6 /);
  });

  test("the namespace batch and the door are IPv4 only too, and the dry-run text says so", () => {
    const plan = planSandbox(config(false, "iptables"));
    expect(plan.sandboxBatch.join("\n")).not.toMatch(/fd70|::\/0/);
    expect(plan.door).toEqual([{ host: "127.0.0.1", port: 3128 }]);
    const text = renderPlan(plan);
    expect(text).not.toContain("ip6tables-restore");
    expect(text).toContain("iptables-restore -w 5, fed:");
  });

  test("ipv4Only drops only rules marked IPv6, from every chain, and leaves the input alone", () => {
    const before = JSON.stringify(ruleset);
    const v4 = ipv4Only(ruleset);
    expect(JSON.stringify(ruleset)).toBe(before);
    expect(Object.keys(v4).sort()).toEqual(Object.keys(ruleset).sort());
    for (const [chain, rules] of Object.entries(ruleset)) {
      expect(v4[chain as keyof typeof v4]).toEqual((rules as Rule[]).filter((r) => r.family !== "ipv6"));
    }
    expect(ruleset.rules.some((r) => r.family === "ipv6")).toBe(true);
  });

  test("fenceSteps defaults to dual stack (doctor's callers)", () => {
    expect(fenceSteps(ruleset, "iptables")).toEqual(fenceSteps(ruleset, "iptables", true));
    expect(fenceSteps(ruleset, "iptables").length).toBe(2);
  });
});
