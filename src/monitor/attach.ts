// Installing and removing the log-only rules of `proxywall monitor` in a namespace it did not
// build: nft first, iptables (mangle, --noflush: the namespace's own rules stay) where nft is
// missing or refuses.
import {
  IPTABLES_NFT_TABLES,
  isEmptyTable,
  listedTables,
  OBSERVE_FEATURES,
  planObserve,
  REMOVE_OBSERVE_IPTABLES,
  REMOVE_OBSERVE_NFT,
  renderObserveIptables,
  renderObserveNft,
  type ObserveInput,
} from "../plan/observe-rules.ts";
import type { Backend } from "../plan/sandbox-plan.ts";
import { inNetns } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";

export interface Attached {
  backend: Backend;
  remove(): Promise<string | null>;
}

async function run(nsPath: string, tool: string, args: string[], stdin?: string): Promise<ToolResult> {
  return inNetns(nsPath, () => startTool(tool, args, stdin));
}

/** Installs the observe rules (without conntrack or limit where the kernel lacks them). */
export async function attachLogRules(nsPath: string, input: Omit<ObserveInput, "features">, asked?: Backend): Promise<Attached> {
  const errors: string[] = [];
  const featureSets = [OBSERVE_FEATURES, { conntrack: false, limit: false }];
  const nft = findTool("nft");
  if (nft && asked !== "iptables") {
    for (const features of featureSets) {
      // The script as one argument: nft -f - needs /dev/stdin, which minimal images lack.
      const r = await run(nsPath, nft, [renderObserveNft(planObserve({ ...input, features }))]);
      if (r.code === 0) {
        return { backend: "nft", remove: async () => ((await run(nsPath, nft, [REMOVE_OBSERVE_NFT])).code === 0 ? null : "nft table proxywall_monitor") };
      }
      errors.push(toolError("nft", r));
    }
  }
  const v4 = findTool("iptables-restore");
  const v6 = findTool("ip6tables-restore");
  if (v4 && v6 && asked !== "nft") {
    // With iptables-nft, which tables nft shows now: those not there yet are ours to drop when empty.
    const before = nft ? await run(nsPath, nft, ["list", "tables"]) : null;
    const ours = before?.code === 0 ? IPTABLES_NFT_TABLES.filter((t) => !listedTables(before.stdout).has(`${t.family} ${t.name}`)) : [];
    const remove = async () => {
      const rs = await Promise.all([run(nsPath, v4, ["-w", "5", "--noflush"], REMOVE_OBSERVE_IPTABLES), run(nsPath, v6, ["-w", "5", "--noflush"], REMOVE_OBSERVE_IPTABLES)]);
      if (!rs.every((r) => r.code === 0)) return "iptables mangle chain PROXYWALL_MONITOR";
      for (const t of ours) {
        const listing = await run(nsPath, nft!, ["-j", "list", "table", t.family, t.name]);
        if (listing.code !== 0 || !isEmptyTable(listing.stdout)) continue;
        if ((await run(nsPath, nft!, [`delete table ${t.family} ${t.name}`])).code !== 0) return `empty nft table ${t.family} ${t.name} (made by iptables-nft)`;
      }
      return null;
    };
    for (const features of featureSets) {
      const rs = planObserve({ ...input, features });
      const results = await Promise.all([
        run(nsPath, v4, ["-w", "5", "--noflush"], renderObserveIptables(rs, "ipv4")),
        run(nsPath, v6, ["-w", "5", "--noflush"], renderObserveIptables(rs, "ipv6")),
      ]);
      if (results.every((r) => r.code === 0)) return { backend: "iptables", remove };
      await remove();
      errors.push(...results.filter((r) => r.code !== 0).map((r) => toolError("iptables-restore", r)));
    }
  }
  throw new Error(errors.length > 0 ? errors[errors.length - 1]! : "neither nft nor iptables-restore/ip6tables-restore was found");
}
