// The fence's selection (check-only probes) and installation: the tool answers read back to
// features without root; the real tools and kernel with root.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { featuresFor, iptablesProbeText, iptablesRefused, missingExtensions, nftProbeText, nftRefused, probeRules, unsupportedKeys } from "../src/fence/probes.ts";
import { candidates, chooseFence, pickFence, runWants, type Probed } from "../src/fence/select.ts";
import { installFence, iptablesSaveTools } from "../src/fence/install.ts";
import { planRuleset } from "../src/plan/ruleset.ts";
import { fenceSteps, watchRules } from "../src/plan/sandbox-plan.ts";
import { netnsPath } from "../src/sys/netns.ts";
import { findTool } from "../src/sys/tools.ts";

const isRoot = process.getuid?.() === 0;
const wants = { logs: ["nflog", "kmsg"] as const, hold: true };

describe("reading the tools' answers", () => {
  const probes = probeRules(wants);

  test("nft -c: each refused rule by its line, with nft's message; a failure naming no rule is no answer", () => {
    const text = nftProbeText(probes);
    const lines = text.split("\n");
    const queueLine = lines.findIndex((l) => l.includes("queue num 1 bypass") && !l.includes("limit")) + 1;
    const stderr = `/proc/self/fd/0:${queueLine}:20-24: Error: Could not process rule: No such file or directory\n${lines[queueLine - 1]}\n                 ^^^^^\n`;
    const refused = nftRefused(probes, text, stderr)!;
    expect([...refused.keys()].map((i) => probes[i]!.key)).toEqual(["queue"]);
    expect(refused.get([...refused.keys()][0]!)).toBe("Error: Could not process rule: No such file or directory");
    expect(nftRefused(probes, text, "Error: Could not process rule: Operation not permitted\n")).toBeNull();
  });

  test("iptables-restore -t: warnings name the extensions, which lead to the features that load them", () => {
    const stderr = "Warning: Extension NFQUEUE revision 0 not supported, missing kernel module?\nWarning: Extension limit revision 0 not supported, missing kernel module?\n";
    expect(missingExtensions(stderr)).toEqual(["NFQUEUE", "limit"]);
    const refused = iptablesRefused(probes, "ipv4", missingExtensions(stderr));
    const keys = unsupportedKeys(probes, refused);
    expect([...keys.keys()].sort()).toEqual(["limit", "queue"]);
    expect(keys.get("queue")).toContain("NFQUEUE not supported");
    expect(iptablesProbeText(probes, "ipv4")).toStartWith("*nat\n");
  });

  test("a rate limit is missing only where the action it limits works", () => {
    const refusedAll = new Map(probes.flatMap((p, i) => (p.key === "nflog" || p.key === "kmsg" || p.key === "queue" || p.key === "limit" ? [[i, "x"] as const] : [])));
    expect(unsupportedKeys(probes, refusedAll).has("limit")).toBe(false);
    const limitOnly = new Map(probes.flatMap((p, i) => (p.key === "limit" ? [[i, "x"] as const] : [])));
    expect([...unsupportedKeys(probes, limitOnly).keys()]).toEqual(["limit"]);
  });

  test("features per log kind: only what is wanted can be missing", () => {
    const none = new Set<string>();
    expect(featuresFor(none as never, "nflog", true)).toEqual({ features: { conntrack: true, log: true, queue: true, limit: true, dns: true }, missing: [] });
    expect(featuresFor(new Set(["queue"]) as never, "nflog", true).missing).toEqual(["queue"]);
    expect(featuresFor(new Set(["queue", "nflog"]) as never, "kmsg", true)).toEqual({ features: { conntrack: true, log: true, queue: false, limit: true, dns: false }, missing: [] });
    expect(featuresFor(new Set(["conntrack", "kmsg"]) as never, "none", false)).toEqual({ features: { conntrack: false, log: false, queue: false, limit: false, dns: false }, missing: ["conntrack"] });
  });

  test("the pick: the first that holds everything, else the one that lacks least; none when none works", () => {
    const p = (flavour: Probed["flavour"], lacks: string[], unusable: string | null = null): Probed => ({
      flavour,
      backend: flavour === "nft" ? "nft" : "iptables",
      label: flavour,
      tools: {},
      unusable,
      unsupported: new Map(lacks.map((k) => [k as never, "refused"])),
      ms: 0,
    });
    const w = runWants(undefined, "auto");
    expect(pickFence(w, [p("nft", ["queue"]), p("iptables-legacy", [])])!.flavour).toBe("iptables-legacy");
    expect(pickFence(w, [p("nft", []), p("iptables-legacy", [])])!.flavour).toBe("nft");
    const lacking = pickFence(w, [p("nft", ["queue", "conntrack"]), p("iptables-legacy", [], "no legacy x_tables"), p("iptables", ["queue"])])!;
    expect(lacking.flavour).toBe("iptables");
    expect(lacking.byLog.nflog.missing).toEqual(["queue"]);
    expect(lacking.byLog.kmsg.missing).toEqual([]);
    expect(pickFence(w, [p("nft", [], "nft not found")])).toBeNull();
  });
});

describe.skipIf(!isRoot)("with the real tools and kernel", () => {
  test("the probe table needs no /etc/protocols (checked with it hidden)", () => {
    const nft = findTool("nft");
    if (!nft) return;
    const text = nftProbeText(probeRules({ logs: ["nflog"], hold: false }));
    const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", `mount --bind /dev/null /etc/protocols && ${nft} -c -f /proc/self/fd/0`], { stdin: new TextEncoder().encode(text), stderr: "pipe" });
    expect({ code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ code: 0, stderr: "" });
  });

  test("the choice installs in a fresh namespace, once, and the counters are read with the same build", async () => {
    const choice = await chooseFence(runWants(undefined, "auto"));
    expect(choice.missing).toEqual(choice.byLog.nflog.missing);
    const ns = `pwfence-${process.pid}`;
    expect(Bun.spawnSync(["ip", "netns", "add", ns]).exitCode).toBe(0);
    try {
      const ruleset = planRuleset({ ...watchRules("nflog", 1, "proxywall:00000000:"), logRate: 100, features: choice.features });
      await installFence(choice, fenceSteps(ruleset, choice.backend), ns);
      if (choice.backend === "iptables") {
        const save = iptablesSaveTools(netnsPath(ns))!;
        expect(save[0]).toContain(choice.flavour === "iptables-legacy" ? "legacy" : "iptables-save");
      }
      // Once only: the nft script adds its table, so a second install in the same namespace fails
      // (iptables-restore replaces its tables and succeeds): either way nothing is planned again.
    } finally {
      Bun.spawnSync(["ip", "netns", "del", ns]);
    }
  });

  test("where the kernel has legacy x_tables and nft lacks queue, the legacy tools hold everything", async () => {
    const legacy = candidates(undefined).find((c) => c.flavour === "iptables-legacy");
    if (!legacy || legacy.absent || !existsSync("/proc/net/ip_tables_names")) return;
    const choice = await chooseFence(runWants(undefined, "auto"));
    const nft = choice.probed.find((p) => p.flavour === "nft");
    if (nft?.unsupported.has("queue")) expect(choice.flavour).toBe("iptables-legacy");
    expect(choice.missing).toEqual([]);
  });
});
