// Everything one sandbox will do to the system, as data: the ip batches, the fence, the
// environment CMD gets and the teardown. `run --dry-run` prints exactly this.
import { renderIptables } from "./render-iptables.ts";
import { renderNft } from "./render-nft.ts";
import { HOLD_QUEUE, planRuleset, type Features, type HoldQueue, type LogTarget, type Ruleset } from "./ruleset.ts";
import { sandboxNames, type SandboxAddresses, type SandboxNames } from "./addresses.ts";

export type Backend = "nft" | "iptables";

export interface SandboxConfig {
  id: string;
  addrs: SandboxAddresses;
  proxyPort: number;
  backend: Backend;
  log: LogTarget;
  hold: HoldQueue | null;
  logRate: number;
  features: Features;
}

/** One fence command: run inside the namespace, its text given as a file (nft) or stdin. */
export interface FenceStep {
  tool: "nft" | "iptables-restore" | "ip6tables-restore";
  /** Arguments; the literal "{file}" stands for a temporary file holding `text`. */
  args: string[];
  text: string;
}

export interface SandboxPlan {
  config: SandboxConfig;
  names: SandboxNames;
  /** `ip -batch -` on the host side. */
  hostBatch: string[];
  /** `ip -batch -` inside the sandbox namespace. */
  sandboxBatch: string[];
  ruleset: Ruleset;
  fence: FenceStep[];
  /** `ip -force -batch -` on the host side; removing the namespace removes its rules too. */
  teardownBatch: string[];
  proxyUrl: string;
}

function bracketed(addr: string): string {
  return addr.includes(":") ? `[${addr}]` : addr;
}

export type LogKind = "nflog" | "kmsg" | "none";

/** The log step for a kind of log; NFLOG comes with holding TCP SYNs for attribution. */
export function watchRules(kind: LogKind, nflogGroup: number, prefix: string): { log: LogTarget; hold: HoldQueue | null } {
  if (kind === "nflog") return { log: { kind: "nflog", group: nflogGroup, prefix }, hold: HOLD_QUEUE };
  if (kind === "kmsg") return { log: { kind: "kmsg", prefix }, hold: null };
  return { log: { kind: "none" }, hold: null };
}

export function fenceSteps(ruleset: Ruleset, backend: Backend): FenceStep[] {
  if (backend === "nft") return [{ tool: "nft", args: ["-f", "{file}"], text: renderNft(ruleset) }];
  return [
    { tool: "iptables-restore", args: ["-w", "5"], text: renderIptables(ruleset, "ipv4") },
    { tool: "ip6tables-restore", args: ["-w", "5"], text: renderIptables(ruleset, "ipv6") },
  ];
}

/** Deleting the host end of the veth deletes both ends; the namespace takes its rules with it. */
export function planTeardown(names: SandboxNames): string[] {
  return [`link del ${names.hostIf}`, `netns del ${names.netns}`];
}

export function planSandbox(config: SandboxConfig): SandboxPlan {
  const names = sandboxNames(config.id);
  const a = config.addrs;
  const ruleset = planRuleset({
    log: config.log,
    hold: config.hold,
    logRate: config.logRate,
    features: config.features,
  });
  return {
    config,
    names,
    hostBatch: [
      `netns add ${names.netns}`,
      `link add ${names.hostIf} type veth peer name ${names.sandboxIf} netns ${names.netns}`,
      `addr add ${a.hostV4}/${a.v4PrefixLen} dev ${names.hostIf}`,
      // nodad: the proxy binds this address at once; duplicate detection would delay that ~1 s.
      `addr add ${a.hostV6}/${a.v6PrefixLen} dev ${names.hostIf} nodad`,
      `link set ${names.hostIf} up`,
    ],
    sandboxBatch: [
      `link set lo up`,
      `addr add ${a.sandboxV4}/${a.v4PrefixLen} dev ${names.sandboxIf}`,
      `addr add ${a.sandboxV6}/${a.v6PrefixLen} dev ${names.sandboxIf} nodad`,
      `link set ${names.sandboxIf} up`,
      `route add default via ${a.hostV4}`,
      `route add default via ${a.hostV6}`,
    ],
    ruleset,
    fence: fenceSteps(ruleset, config.backend),
    teardownBatch: planTeardown(names),
    proxyUrl: `http://${bracketed(a.hostV4)}:${config.proxyPort}`,
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
  out.push(`# host: ip -batch -`, ...plan.hostBatch, "");
  out.push(`# inside ${plan.names.netns}: ip -batch -`, ...plan.sandboxBatch, "");
  for (const step of plan.fence) {
    const args = step.args.map((a) => (a === "{file}" ? "FILE" : a)).join(" ");
    out.push(`# inside ${plan.names.netns}: ${step.tool} ${args}${step.args.includes("{file}") ? ", FILE holding:" : ", fed:"}`);
    out.push(step.text.trimEnd(), "");
  }
  out.push(`# CMD runs inside ${plan.names.netns} with HTTP_PROXY=HTTPS_PROXY=ALL_PROXY=GRPC_PROXY=${plan.proxyUrl}`);
  out.push(`#   NO_PROXY=localhost,127.0.0.1,::1 NODE_USE_ENV_PROXY=1`, "");
  out.push(`# teardown, host: ip -force -batch -`, ...plan.teardownBatch);
  return out.join("\n") + "\n";
}
