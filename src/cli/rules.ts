// `proxywall rules`: prints the exact ruleset a sandbox installs, without root, changing nothing.
import { defineCommand } from "citty";
import * as v from "valibot";
import { ID_PATTERN, sandboxNames } from "../plan/addresses.ts";
import { ALL_FEATURES, planRuleset } from "../plan/ruleset.ts";
import { validate } from "./argv.ts";
import { FenceOptions, fenceArgs, fenceInput } from "./fence-options.ts";
import { fenceSteps, watchRules } from "../plan/sandbox-plan.ts";

const Options = v.object({
  ...FenceOptions.entries,
  log: v.picklist(["nflog", "kmsg", "none"], "must be nflog, kmsg or none"),
  id: v.pipe(v.string(), v.regex(ID_PATTERN, "must be 8 lower-case hex digits")),
});

export default defineCommand({
  meta: { name: "rules", description: "Print the firewall ruleset a sandbox installs (nftables script, or iptables-restore input)" },
  args: {
    ...fenceArgs,
    log: { type: "string", description: "how rejected attempts are seen: nflog (per namespace; TCP SYNs are also held in an NFQUEUE so the sender can be named), kmsg (kernel log), none", default: "nflog", valueHint: "nflog|kmsg|none" },
    id: { type: "string", description: "sandbox id the log prefix names", default: "00000000" },
  },
  run({ args }) {
    const o = validate(Options, { ...fenceInput(args), log: args.log, id: args.id });
    const ruleset = planRuleset({
      ...watchRules(o.log, o.nflogGroup, sandboxNames(o.id).logPrefix),
      logRate: o.logRate,
      features: ALL_FEATURES,
    });
    // The very steps a run installs (which build of iptables-restore runs them is decided per kernel).
    for (const step of fenceSteps(ruleset, o.backend ?? "nft")) {
      console.log(`# ${step.tool} ${step.args.join(" ")}, inside the sandbox network namespace, fed:\n${step.text}`);
    }
    return 0;
  },
});
