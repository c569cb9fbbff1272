// Everything one sandbox will do to the system, as data: the ip batches, the fence, the
// environment CMD gets and the teardown. `run --dry-run` prints exactly this.
//
// The sandbox has no host side: `ip netns add` is the only step outside it. Inside, loopback and
// a veth pair kept wholly in the namespace (one end with the default routes, the other a sink),
// so every outbound packet meets the fence and nothing is added to the host's links, addresses,
// routes or firewall. The proxy's door is on the sandbox's own loopback.
import { renderIptables } from "./render-iptables.ts";
import { renderNft } from "./render-nft.ts";
import { HOLD_QUEUE, planRuleset, type Features, type HoldQueue, type LogTarget, type Rule, type Ruleset } from "./ruleset.ts";
import { DOOR, INSIDE, sandboxNames, type SandboxNames } from "./addresses.ts";

export type Backend = "nft" | "iptables";

export interface SandboxConfig {
  id: string;
  proxyPort: number;
  /** Whether the sandbox has IPv6 (the kernel has it, and it is not disabled in the namespace). */
  ipv6: boolean;
  backend: Backend;
  log: LogTarget;
  hold: HoldQueue | null;
  logRate: number;
  features: Features;
}

/** One fence command: run inside the namespace, `text` fed on its standard input. */
export interface FenceStep {
  tool: "nft" | "iptables-restore" | "ip6tables-restore";
  args: string[];
  text: string;
}

export interface SandboxPlan {
  config: SandboxConfig;
  names: SandboxNames;
  /** `ip -batch -` in proxywall's own namespace: only the namespace itself. */
  hostBatch: string[];
  /** `ip -batch -` inside the sandbox namespace: loopback, the veth pair, addresses, routes. */
  sandboxBatch: string[];
  ruleset: Ruleset;
  fence: FenceStep[];
  /** `ip -force -batch -` in proxywall's own namespace; the namespace takes links and rules with it. */
  teardownBatch: string[];
  /** Where the proxy's door listens inside the sandbox. */
  door: { host: string; port: number }[];
  proxyUrl: string;
}

export type LogKind = "nflog" | "kmsg" | "none";

/** The log step for a kind of log; NFLOG comes with holding TCP SYNs for attribution. */
export function watchRules(kind: LogKind, nflogGroup: number, prefix: string): { log: LogTarget; hold: HoldQueue | null } {
  if (kind === "nflog") return { log: { kind: "nflog", group: nflogGroup, prefix }, hold: HOLD_QUEUE };
  if (kind === "kmsg") return { log: { kind: "kmsg", prefix }, hold: null };
  return { log: { kind: "none" }, hold: null };
}

/** The ruleset without its IPv6-only rules (neighbour discovery), for a sandbox without IPv6. */
export function ipv4Only(ruleset: Ruleset): Ruleset {
  // Every chain of the ruleset, whichever it has: a rule meant for IPv6 alone has nothing to match.
  const chains = Object.entries(ruleset).map(([chain, rules]: [string, Rule[]]) => [chain, rules.filter((r) => r.family !== "ipv6")]);
  return Object.fromEntries(chains) as Ruleset;
}

/**
 * The fence as commands: one atomic `nft -f`, or iptables-restore and ip6tables-restore (run at
 * once; which build of them, legacy or nf_tables, is src/fence/select.ts's choice). Without IPv6
 * (`ipv6` false: the kernel has none, or the namespace keeps it switched off) there is no
 * ip6tables-restore step, which would fail where the kernel has no IPv6 ("Address family not
 * supported by protocol" under ipv6.disable=1), and no IPv6-only rule: no IPv6 packet can leave
 * such a sandbox, so there is nothing to fence.
 */
export function fenceSteps(ruleset: Ruleset, backend: Backend, ipv6 = true): FenceStep[] {
  const rs = ipv6 ? ruleset : ipv4Only(ruleset);
  // nft -f - needs /dev/stdin, which minimal images lack; /proc/self/fd/0 is there wherever /proc is.
  if (backend === "nft") return [{ tool: "nft", args: ["-f", "/proc/self/fd/0"], text: renderNft(rs) }];
  return [
    { tool: "iptables-restore", args: ["-w", "5"], text: renderIptables(rs, "ipv4") },
    ...(ipv6 ? [{ tool: "ip6tables-restore" as const, args: ["-w", "5"], text: renderIptables(rs, "ipv6") }] : []),
  ];
}

/** The proxy URL CMD is given: the door on the sandbox's own loopback. */
export function doorUrl(port: number): string {
  return `http://${DOOR.v4}:${port}`;
}

/** The one step in proxywall's own namespace. */
export function planNamespace(names: SandboxNames): string[] {
  return [`netns add ${names.netns}`];
}

/** Removing the namespace removes its links and rules with it. */
export function planTeardown(names: SandboxNames): string[] {
  return [`netns del ${names.netns}`];
}

/** Inside the namespace: loopback, the veth pair, the inside addresses and the default routes. */
export function planInside(names: SandboxNames, ipv6: boolean): string[] {
  const { routeIf, sinkIf } = names;
  return [
    `link set lo up`,
    `link add ${routeIf} type veth peer name ${sinkIf}`,
    `addr add ${INSIDE.v4}/${INSIDE.v4PrefixLen} dev ${routeIf}`,
    // nodad: nothing answers on the sink; duplicate detection would only delay the address.
    ...(ipv6 ? [`addr add ${INSIDE.v6}/${INSIDE.v6PrefixLen} dev ${routeIf} nodad`] : []),
    `link set ${sinkIf} up`,
    `link set ${routeIf} up`,
    `route add default dev ${routeIf}`,
    ...(ipv6 ? [`route add ::/0 dev ${routeIf}`] : []),
  ];
}

export function planSandbox(config: SandboxConfig): SandboxPlan {
  const names = sandboxNames(config.id);
  const ruleset = planRuleset({ log: config.log, hold: config.hold, logRate: config.logRate, features: config.features });
  const door = [DOOR.v4, ...(config.ipv6 ? [DOOR.v6] : [])].map((host) => ({ host, port: config.proxyPort }));
  return {
    config,
    names,
    hostBatch: planNamespace(names),
    sandboxBatch: planInside(names, config.ipv6),
    ruleset,
    fence: fenceSteps(ruleset, config.backend, config.ipv6),
    teardownBatch: planTeardown(names),
    door,
    proxyUrl: doorUrl(config.proxyPort),
  };
}

/** The environment CMD runs with: the user's own, plus every proxy variable clients look at. */
export function proxyEnv(base: Record<string, string | undefined>, proxyUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  const noProxy = "localhost,127.0.0.1,::1";
  return Object.assign(env, {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    ALL_PROXY: proxyUrl,
    all_proxy: proxyUrl,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: "1",
    GRPC_PROXY: proxyUrl,
    grpc_proxy: proxyUrl,
  });
}

/** The plan as text: every command in order, with the text it is fed. */
export function renderPlan(plan: SandboxPlan): string {
  const out: string[] = [];
  out.push(`# proxywall's own namespace: in-process, as ip netns add does (mount, unshare, bind mount)`, ...plan.hostBatch, "");
  out.push(`# inside ${plan.names.netns}: ip -batch -`, ...plan.sandboxBatch, "");
  for (const step of plan.fence) {
    const args = step.args.map((a) => (a === "{file}" ? "FILE" : a)).join(" ");
    out.push(`# inside ${plan.names.netns}: ${step.tool} ${args}${step.args.includes("{file}") ? ", FILE holding:" : ", fed:"}`);
    out.push(step.text.trimEnd(), "");
  }
  out.push(`# the proxy listens inside ${plan.names.netns} on ${plan.door.map((d) => (d.host.includes(":") ? `[${d.host}]:${d.port}` : `${d.host}:${d.port}`)).join(" and ")}; it connects out from proxywall's own namespace`);
  out.push(`# CMD runs inside ${plan.names.netns} with HTTP_PROXY=HTTPS_PROXY=ALL_PROXY=GRPC_PROXY=${plan.proxyUrl}`);
  out.push(`#   NO_PROXY=localhost,127.0.0.1,::1 NODE_USE_ENV_PROXY=1`, "");
  out.push(`# teardown, proxywall's own namespace: in-process, as ip netns del does (umount, unlink)`, ...plan.teardownBatch);
  return out.join("\n") + "\n";
}
