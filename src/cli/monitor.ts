// `proxywall monitor --netns NAME | --pid PID`: watch a network namespace that proxywall did not
// create, with log rules of its own that change nothing the namespace lets through, removed on exit.
import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import * as v from "valibot";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { Degraded, EventLine } from "../events/schema.ts";
import { openEventOutputs } from "../events/human.ts";
import { newSandboxId, sandboxNames } from "../plan/addresses.ts";
import { attachLogRules } from "../monitor/attach.ts";
import { Watch } from "../monitor/watch.ts";
import { missingSandboxCaps } from "../sys/capabilities.ts";
import { AddressPortOption, intOption, validate } from "./argv.ts";
import { FenceOptions, fenceArgs, fenceInput, WatchOptions, watchArgs, watchInput } from "./fence-options.ts";
import { EXIT, ExitError, usageError } from "../exit-codes.ts";

const Options = v.object({
  netns: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,255}$/, "must be a namespace name as `ip netns list` shows it"))),
  pid: v.optional(intOption(1, 4194304)),
  source: v.picklist(["auto", "nflog", "kmsg", "dmesg"], "must be auto, nflog, kmsg or dmesg"),
  proxy: v.optional(AddressPortOption),
  ...FenceOptions.entries,
  ...WatchOptions.entries,
});

export default defineCommand({
  meta: { name: "monitor", description: "Watch a network namespace proxywall did not create and print a JSON line for every connection that is not to its proxy" },
  args: {
    netns: { type: "string", description: "namespace name (as in ip netns list)" },
    pid: { type: "string", description: "watch the network namespace of this process" },
    source: { type: "string", description: "auto (NFLOG, else the kernel log where it works), nflog, kmsg, dmesg", default: "auto", valueHint: "auto|nflog|kmsg|dmesg" },
    proxy: { type: "string", description: "the namespace's proxy: connections to it are not reported", valueHint: "ADDRESS:PORT" },
    ...fenceArgs,
    ...watchArgs,
    // Another NFLOG group than run's, so monitor can watch a namespace where a sandbox's own watch runs.
    "nflog-group": { ...fenceArgs["nflog-group"], default: "2" },
  },
  async run({ args }) {
    const o = validate(Options, {
      netns: args.netns,
      pid: args.pid,
      source: args.source,
      proxy: args.proxy,
      ...fenceInput(args),
      ...watchInput(args),
    });
    if ((o.netns === undefined) === (o.pid === undefined)) throw usageError("give exactly one of --netns NAME and --pid PID");
    const nsPath = o.netns !== undefined ? `/run/netns/${o.netns}` : `/proc/${o.pid}/ns/net`;
    if (!existsSync(nsPath)) throw usageError(o.netns !== undefined ? `no network namespace named ${o.netns}` : `no process ${o.pid}`);
    const allow = o.proxy ? [o.proxy] : [];
    const sink = await openEventOutputs(o.eventFormat, o.events, 1);
    if (typeof sink === "string") throw usageError(sink);
    const privileges = missingSandboxCaps();
    if (privileges) throw new ExitError(`monitor ${privileges}`, EXIT.sandbox);

    const label = o.netns ?? `pid:${o.pid}`;
    const id = newSandboxId();
    const emit = (e: EventLine) => sink.write(e);
    const degrade = (component: string, missing: string, fix: string, still: string) => {
      const d: Degraded = { v: 1, event: "degraded", ts: nowTs(), sandbox: label, component, missing, fix, still_protected: still };
      emit(d);
    };
    const watch = Watch.open(o.source, {
      sandbox: label,
      nsPath,
      prefix: sandboxNames(id).logPrefix,
      nflogGroup: o.nflogGroup,
      hold: null,
      action: "observe",
      proxy: { addrs: allow.map((a) => a.addr), port: allow[0]?.port ?? 0 },
      emit,
      degrade: (c, m, f) => degrade(c, m, f, "nothing: monitor only watches; the namespace's own rules decide what passes"),
    });
    if (o.pid) watch.cmdStarted(o.pid);
    if (watch.source === "off") {
      await watch.close();
      throw new ExitError("nothing can watch this namespace (see the degraded line above)", EXIT.failure);
    }
    let attached;
    try {
      const log = watch.logKind === "nflog" ? { kind: "nflog" as const, group: o.nflogGroup, prefix: sandboxNames(id).logPrefix } : { kind: "kmsg" as const, prefix: sandboxNames(id).logPrefix };
      attached = await attachLogRules(nsPath, { allow, log, logRate: o.logRate }, o.backend);
    } catch (e) {
      await watch.close();
      throw new ExitError(`cannot add log rules in ${label}: ${(e as Error).message}`, EXIT.sandbox);
    }
    watch.logRulesInstalled({ log: true });
    diag.info(`watching ${label} with ${watch.source} (log rules by ${attached.backend}); stop with Ctrl-C`);

    const summarize = async (final: boolean) => {
      if (final) await watch.drain();
      for (const line of watch.summary.lines(label, final)) emit(line);
    };
    const timer = o.summaryInterval > 0 ? setInterval(() => void summarize(false), o.summaryInterval * 1000) : null;
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(s, () => resolve(s));
    });
    if (timer) clearInterval(timer);
    await summarize(true);
    const left = await attached.remove();
    await watch.close();
    if (left) {
      diag.error(`could not remove the ${left} from ${label}`);
      return EXIT.failure;
    }
    diag.debug(`stopped by ${signal}`);
    return EXIT.ok;
  },
});
