// `proxywall run [options] -- CMD [ARGS...]`: the container-entrypoint wrapper.
import { defineCommand } from "citty";
import * as v from "valibot";
import { diag } from "../diag.ts";
import { openEventOutputs } from "../events/human.ts";
import { newSandboxId, sandboxNames } from "../plan/addresses.ts";
import { ALL_FEATURES } from "../plan/ruleset.ts";
import { planSandbox, renderPlan } from "../plan/sandbox-plan.ts";
import { DEFAULT_STATE_DIR } from "../sandbox/state.ts";
import { resolveUser } from "../sys/users.ts";
import { AddressPortOption, intOption, validate, type CliData } from "./argv.ts";
import { EXIT, ExitError, usageError } from "../exit-codes.ts";
import { FenceOptions, fenceArgs, fenceInput, WatchOptions, watchArgs, watchInput } from "./fence-options.ts";
import { policyArgs, policyFrom } from "./policy-options.ts";
import { DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CLIENTS, DEFAULT_PROXY_PORT } from "../proxy/defaults.ts";
import { watchRules } from "../plan/sandbox-plan.ts";
import { missingSandboxCaps } from "../sys/capabilities.ts";
import { parseFamilies } from "../sys/seccomp.ts";

const Options = v.object({
  ...FenceOptions.entries,
  ...WatchOptions.entries,
  proxyPort: intOption(1, 65535),
  externalProxy: v.optional(v.union([AddressPortOption, v.pipe(intOption(1, 65535), v.transform((port) => ({ addr: "127.0.0.1", port })))], "must be PORT or ADDRESS:PORT")),
  user: v.optional(v.string()),
  keepCaps: v.boolean(),
  socketFamilies: v.optional(v.pipe(v.string(), v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const r = parseFamilies(dataset.value);
    if (typeof r === "string") {
      addIssue({ message: r });
      return NEVER;
    }
    return r;
  }))),
  stateDir: v.pipe(v.string(), v.regex(/^\//, "must be an absolute path"), v.maxLength(1024, "is too long")),
  allowDegraded: v.boolean(),
  dryRun: v.boolean(),
  monitor: v.picklist(["auto", "nflog", "kmsg", "dmesg", "off"], "must be auto, nflog, kmsg, dmesg or off"),
  failOnBypass: v.boolean(),
  idleTimeout: intOption(1, 86400),
  maxClients: intOption(1, 100000),
});

export default defineCommand({
  meta: { name: "run", description: "Run CMD in a network namespace whose only way out is an HTTP proxy: proxywall run [options] -- CMD [ARGS...]" },
  args: {
    ...fenceArgs,
    ...watchArgs,
    "proxy-port": { type: "string", description: "port of the proxy's door on the sandbox's own loopback (127.0.0.1 and ::1)", default: String(DEFAULT_PROXY_PORT) },
    "external-proxy": { type: "string", description: "start no proxy: the door relays to your own proxy, listening where proxywall runs (ADDRESS defaults to 127.0.0.1)", valueHint: "[ADDRESS:]PORT" },
    user: { type: "string", description: "run CMD as this user (and group), without privileges", valueHint: "UID[:GID]" },
    "keep-caps": { type: "boolean", description: "let CMD keep proxywall's capabilities (NET_ADMIN, SYS_ADMIN, ...: it could then remove the rules) and setuid programs work; a degraded line says so" },
    "allow-socket-family": { type: "string", description: "socket families CMD may open besides unix, inet, inet6 and netlink (the fence does not see them)", valueHint: "vsock,packet,..." },
    "state-dir": { type: "string", description: "directory for state files of live sandboxes", default: DEFAULT_STATE_DIR },
    "allow-degraded": { type: "boolean", description: "run CMD even when the rules cannot be installed (with a loud degraded event)" },
    "dry-run": { type: "boolean", description: "print the commands and rules run would apply, change nothing" },
    monitor: { type: "string", description: "what watches for bypass attempts: auto (nflog, else the kernel log where it works), nflog, kmsg, dmesg, off", default: "auto", valueHint: "auto|nflog|kmsg|dmesg|off" },
    "fail-on-bypass": { type: "boolean", description: "exit 4 when CMD succeeded but tried to go around the proxy (for CI jobs)" },
    ...policyArgs,
    "idle-timeout": { type: "string", description: "end a tunnel or request through the built-in proxy after this many seconds with no byte either way", default: String(DEFAULT_IDLE_TIMEOUT_S), valueHint: "SECONDS" },
    "max-clients": { type: "string", description: "at most this many connections to the built-in proxy at once; more get 503", default: String(DEFAULT_MAX_CLIENTS), valueHint: "N" },
  },
  async run({ args, data, rawArgs }) {
    const o = validate(Options, {
      ...fenceInput(args),
      ...watchInput(args),
      proxyPort: args["proxy-port"],
      externalProxy: args["external-proxy"],
      user: args.user,
      keepCaps: args["keep-caps"] === true,
      socketFamilies: args["allow-socket-family"],
      stateDir: args["state-dir"],
      allowDegraded: args["allow-degraded"] === true,
      dryRun: args["dry-run"] === true,
      monitor: args.monitor,
      failOnBypass: args["fail-on-bypass"] === true,
      idleTimeout: args["idle-timeout"],
      maxClients: args["max-clients"],
    });
    const policy = policyFrom(rawArgs, o.proxyPort);
    const cmd = (data as CliData).passthrough ?? [];
    if (cmd.length === 0) throw usageError("no command to run: proxywall run [options] -- CMD [ARGS...]");
    if (cmd.some((a) => a.length > 128 * 1024)) throw usageError("an argument of CMD is longer than 128 KiB");
    const user = o.user === undefined ? null : resolveUser(o.user);
    if (typeof user === "string") throw usageError(`--user: ${user}`);

    if (o.dryRun) {
      const id = newSandboxId();
      const plan = planSandbox({
        id,
        proxyPort: o.proxyPort,
        ipv6: true,
        backend: o.backend ?? "nft",
        ...watchRules(o.monitor === "off" ? "none" : o.monitor === "kmsg" || o.monitor === "dmesg" ? "kmsg" : "nflog", o.nflogGroup, sandboxNames(id).logPrefix),
        logRate: o.logRate,
        features: ALL_FEATURES,
      });
      console.log(`# proxywall run --dry-run: sandbox ${id} (a real run leaves IPv6 out where the kernel has none)\n${renderPlan(plan)}`);
      return EXIT.ok;
    }

    const events = await openEventOutputs(o.eventFormat, o.events, 2);
    if (typeof events === "string") throw usageError(events);
    const privileges = missingSandboxCaps();
    if (privileges) throw new ExitError(`cannot build the sandbox: proxywall ${privileges}`, EXIT.sandbox);
    diag.debug(`running ${cmd.join(" ")}`);
    const { runSandbox } = await import("../sandbox/session.ts");
    const ci = (await import("../sandbox/ci-summary.ts")).startCiSummary(events);
    const code = await runSandbox({
      cmd,
      proxyPort: o.proxyPort,
      externalProxy: o.externalProxy ? { host: o.externalProxy.addr, port: o.externalProxy.port } : null,
      backend: o.backend,
      nflogGroup: o.nflogGroup,
      logRate: o.logRate,
      user,
      stateDir: o.stateDir,
      allowDegraded: o.allowDegraded,
      keepCaps: o.keepCaps,
      socketFamilies: o.socketFamilies ?? [],
      events,
      monitor: o.monitor,
      summaryInterval: o.summaryInterval,
      failOnBypass: o.failOnBypass,
      policy,
      idleTimeoutS: o.idleTimeout,
      maxClients: o.maxClients,
    });
    ci?.end();
    return code;
  },
});
