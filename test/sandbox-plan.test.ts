// The plan of one sandbox as data (src/plan/sandbox-plan.ts): what each step runs, in order; the
// environment CMD gets; and the dry run's text, which must show exactly what is applied.
import { describe, expect, test } from "bun:test";
import { ALL_FEATURES } from "../src/plan/ruleset.ts";
import { planInside, planNamespace, planSandbox, planTeardown, proxyEnv, renderPlan, watchRules, type SandboxConfig } from "../src/plan/sandbox-plan.ts";
import { sandboxNames } from "../src/plan/addresses.ts";

const config: SandboxConfig = {
  id: "abcd1234",
  proxyPort: 3128,
  ipv6: true,
  backend: "nft",
  ...watchRules("nflog", 1, "proxywall:abcd1234:"),
  logRate: 100,
  features: ALL_FEATURES,
};

describe("the namespace: nothing on the host but the namespace itself", () => {
  const names = sandboxNames("abcd1234");

  test("one step in proxywall's own namespace, one to remove it", () => {
    expect(planNamespace(names)).toEqual(["netns add pw-abcd1234"]);
    expect(planTeardown(names)).toEqual(["netns del pw-abcd1234"]);
  });

  test("inside: loopback, the veth pair kept inside, the addresses, the default routes on pw0", () => {
    expect(planInside(names, true)).toEqual([
      "link set lo up",
      "link add pw0 type veth peer name pw1",
      "addr add 10.200.0.2/30 dev pw0",
      "addr add fd70:7077::2/64 dev pw0 nodad",
      "link set pw1 up",
      "link set pw0 up",
      "route add default dev pw0",
      "route add ::/0 dev pw0",
    ]);
  });

  test("without IPv6 no IPv6 address or route", () => {
    const lines = planInside(names, false);
    expect(lines.filter((l) => l.includes(":"))).toEqual([]);
    expect(lines).toContain("route add default dev pw0");
  });
});

describe("planSandbox", () => {
  test("the door is the sandbox's own loopback, both families, and CMD's proxy URL points at it", () => {
    const plan = planSandbox(config);
    expect(plan.door).toEqual([
      { host: "127.0.0.1", port: 3128 },
      { host: "::1", port: 3128 },
    ]);
    expect(plan.proxyUrl).toBe("http://127.0.0.1:3128");
    expect(planSandbox({ ...config, ipv6: false, proxyPort: 8080 }).door).toEqual([{ host: "127.0.0.1", port: 8080 }]);
  });

  test("the fence carries no rule for a host address: the door (and the DNS responder) are on loopback", () => {
    const plan = planSandbox(config);
    const addressed = [...plan.ruleset.rules, ...plan.ruleset.hold].flatMap((r) => (r.daddr === undefined ? [] : [r.daddr]));
    expect(addressed.filter((a) => a !== "127.0.0.1" && a !== "::1")).toEqual([]);
    expect(plan.fence.map((f) => f.tool)).toEqual(["nft"]);
    expect(planSandbox({ ...config, backend: "iptables" }).fence.map((f) => f.tool)).toEqual(["iptables-restore", "ip6tables-restore"]);
  });
});

describe("proxyEnv", () => {
  test("every variable clients read, the user's own kept, undefined ones dropped", () => {
    const env = proxyEnv({ HOME: "/root", HTTP_PROXY: "http://old:1", GONE: undefined }, "http://127.0.0.1:3128");
    expect(env).toEqual({
      HOME: "/root",
      HTTP_PROXY: "http://127.0.0.1:3128",
      HTTPS_PROXY: "http://127.0.0.1:3128",
      http_proxy: "http://127.0.0.1:3128",
      https_proxy: "http://127.0.0.1:3128",
      ALL_PROXY: "http://127.0.0.1:3128",
      all_proxy: "http://127.0.0.1:3128",
      NO_PROXY: "localhost,127.0.0.1,::1",
      no_proxy: "localhost,127.0.0.1,::1",
      NODE_USE_ENV_PROXY: "1",
      GRPC_PROXY: "http://127.0.0.1:3128",
      grpc_proxy: "http://127.0.0.1:3128",
    });
    expect("GONE" in env).toBe(false);
  });
});

describe("renderPlan: the dry run shows every command with what it is fed, in order", () => {
  const text = renderPlan(planSandbox(config));

  test("sections in the order a run applies them", () => {
    const heads = text.split("\n").filter((l) => l.startsWith("# "));
    expect(heads).toEqual([
      "# proxywall's own namespace: in-process, as ip netns add does (mount, unshare, bind mount)",
      "# inside pw-abcd1234: ip -batch -",
      "# inside pw-abcd1234: nft -f /proc/self/fd/0, fed:",
      "# the proxy listens inside pw-abcd1234 on 127.0.0.1:3128 and [::1]:3128; it connects out from proxywall's own namespace",
      "# CMD runs inside pw-abcd1234 with HTTP_PROXY=HTTPS_PROXY=ALL_PROXY=GRPC_PROXY=http://127.0.0.1:3128",
      "#   NO_PROXY=localhost,127.0.0.1,::1 NODE_USE_ENV_PROXY=1",
      "# teardown, proxywall's own namespace: in-process, as ip netns del does (umount, unlink)",
    ]);
  });

  test("each section holds exactly the plan's lines", () => {
    const plan = planSandbox(config);
    const section = (head: string) => {
      const lines = text.split("\n");
      const at = lines.indexOf(head);
      const end = lines.findIndex((l, i) => i > at && (l === "" || l.startsWith("# ")));
      return lines.slice(at + 1, end < 0 ? undefined : end);
    };
    expect(section("# proxywall's own namespace: in-process, as ip netns add does (mount, unshare, bind mount)")).toEqual(plan.hostBatch);
    expect(section("# inside pw-abcd1234: ip -batch -")).toEqual(plan.sandboxBatch);
    expect(section("# teardown, proxywall's own namespace: in-process, as ip netns del does (umount, unlink)")).toEqual(plan.teardownBatch);
    expect(text).toContain(plan.fence[0]!.text.trimEnd());
  });
});
