// `proxywall doctor`: can this machine build a fenced sandbox, and which monitor would report the
// bypass attempts? Every check looks at the real thing: tools are run, a scratch namespace with a
// veth pair is created (and always removed), and rules are loaded into that namespace, so the
// kernel itself says what it supports. Nothing here needs root: without privileges the checks
// that need them report what is missing instead of trying.
import { openNflog } from "../monitor/nflog-socket.ts";
import { setRealtime } from "../sys/sched.ts";
import { closeSync, constants as fsc, existsSync, openSync, readFileSync, readlinkSync } from "node:fs";
import * as v from "valibot";
import { renderIptables } from "../plan/render-iptables.ts";
import { renderNft } from "../plan/render-nft.ts";
import { ALL_FEATURES, HOLD_QUEUE, planRuleset, type Features, type Rule, type Ruleset } from "../plan/ruleset.ts";
import type { Backend } from "../plan/sandbox-plan.ts";
import { CAP_NET_ADMIN, CAP_SYS_ADMIN, effectiveCaps, hasCap } from "../sys/capabilities.ts";
import { inNetns, netnsPath } from "../sys/netns.ts";
import { findTool, startTool, toolError, type ToolResult } from "../sys/tools.ts";
import { candidates } from "../fence/select.ts";

// Interim, until doctor asks select.ts itself: the nft and system iptables tools, as before.
type BackendChoice = { backend: Backend; tools: Record<string, string> };
const backendCandidates = (asked?: Backend): BackendChoice[] =>
  candidates(asked).flatMap((c) => (c.absent || !c.tools || c.flavour === "iptables-legacy" ? [] : [{ backend: c.backend, tools: c.tools as Record<string, string> }]));

// ---------------------------------------------------------------------------------------------
// The report, as data. `doctor --json` prints exactly one DoctorReport.

export const CHECK_NAMES = [
  "cap-net-admin",
  "cap-sys-admin",
  "ip",
  "nft",
  "iptables",
  "ip6tables",
  "netns",
  "veth",
  "fence",
  "conntrack",
  "nflog",
  "log",
  "nfqueue",
  "kmsg",
  "nf-log-all-netns",
  "initial-netns",
  "userns",
  "monitor",
  "realtime",
  "cleanup",
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

export const CheckStatus = v.picklist(["ok", "missing", "warn"]);
export type CheckStatus = v.InferOutput<typeof CheckStatus>;

export const Check = v.strictObject({
  name: v.picklist(CHECK_NAMES),
  /** ok: works; missing: absent or refused; warn: works partly, could not be checked, or only matters for an option. */
  status: CheckStatus,
  /** A fenced sandbox needs this check to be ok; the others only add or explain features. */
  required: v.boolean(),
  /** What was found. */
  detail: v.pipe(v.string(), v.minLength(1)),
  /** What to do about it; null when there is nothing to do. */
  fix: v.nullable(v.pipe(v.string(), v.minLength(1))),
});
export type Check = v.InferOutput<typeof Check>;

export const DoctorReport = v.pipe(
  v.strictObject({
    /** `proxywall run` can build a fenced sandbox here: every required check is ok. */
    ok: v.boolean(),
    checks: v.array(Check),
  }),
  v.check((r) => r.ok === r.checks.every((c) => !c.required || c.status === "ok"), "ok must say whether every required check is ok"),
  v.check((r) => new Set(r.checks.map((c) => c.name)).size === r.checks.length, "each check appears once"),
);
export type DoctorReport = v.InferOutput<typeof DoctorReport>;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** No single tool may hold the doctor up: ip, nft and friends answer in milliseconds. */
const TOOL_TIMEOUT_MS = 1500;

async function within(p: Promise<ToolResult>, what: string): Promise<ToolResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<ToolResult>((resolve) => {
    timer = setTimeout(() => resolve({ code: -1, stdout: "", stderr: `${what} did not finish within ${TOOL_TIMEOUT_MS} ms` }), TOOL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function run(tool: string, args: readonly string[], stdin?: string): Promise<ToolResult> {
  return within(startTool(tool, args, stdin).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message })), tool);
}

/** Starts the tool inside the network namespace at nsPath (setns around the spawn only). */
function runIn(nsPath: string, tool: string, args: readonly string[], stdin?: string): Promise<ToolResult> {
  try {
    return within(inNetns(nsPath, () => startTool(tool, args, stdin)).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message })), tool);
  } catch (e) {
    return Promise.resolve({ code: -1, stdout: "", stderr: (e as Error).message });
  }
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0]?.trim() ?? "";
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code}` : String((e as Error)?.message ?? e);
}

const ok = (name: CheckName, required: boolean, detail: string): Check => ({ name, status: "ok", required, detail, fix: null });
const bad = (name: CheckName, status: "missing" | "warn", required: boolean, detail: string, fix: string | null): Check => ({ name, status, required, detail, fix });

const RUN_AS_ROOT = "run as root (or grant CAP_NET_ADMIN and CAP_SYS_ADMIN, e.g. docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN)";

// ---------------------------------------------------------------------------------------------
// NFLOG netlink socket: bind a group with the monitor's own code, inside the scratch namespace.

/** Binds NFLOG `group` in the namespace and lets it go again; null on success, else why not. */
/** Whether the watch thread can run at real-time priority: tried on this thread, then undone. */
function checkRealtime(): Check {
  if (setRealtime(true)) {
    setRealtime(false);
    return ok("realtime", false, "the watch thread can run at real-time priority (SCHED_FIFO 1) while it is not flooded");
  }
  return bad(
    "realtime",
    "warn",
    false,
    "no real-time priority (CAP_SYS_NICE or RLIMIT_RTPRIO): the watch thread can wait for a CPU, and a UDP client that exits within a few milliseconds of its attempt may then be reported without its process",
    "grant CAP_SYS_NICE (docker run --cap-add SYS_NICE)",
  );
}

async function probeNflogBind(nsPath: string, group: number): Promise<string | null> {
  try {
    await openNflog({ netns: nsPath, group, onPacket: () => {} }).close();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// ---------------------------------------------------------------------------------------------
// Tools

async function toolVersion(path: string, args: string[]): Promise<string> {
  const r = await run(path, args);
  return firstLine(r.stdout) || firstLine(r.stderr) || `exit ${r.code}`;
}

async function checkIp(): Promise<Check> {
  const ip = findTool("ip");
  if (!ip) return bad("ip", "missing", true, "ip (iproute2) not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin", "apt-get install iproute2 (Alpine: apk add iproute2)");
  const version = await toolVersion(ip, ["-V"]);
  if (/busybox/i.test(version)) return bad("ip", "missing", true, `${ip} is BusyBox ip (${version}): it has no netns or -batch`, "apt-get install iproute2 (Alpine: apk add iproute2)");
  return ok("ip", true, `${ip}: ${version}`);
}

async function checkNft(): Promise<Check> {
  const nft = findTool("nft");
  if (!nft) {
    const alt = findTool("iptables-restore") && findTool("ip6tables-restore") ? " (the iptables backend is used instead)" : "";
    return bad("nft", "missing", false, `nft not found${alt}`, "apt-get install nftables (Alpine: apk add nftables)");
  }
  return ok("nft", false, `${nft}: ${await toolVersion(nft, ["--version"])}`);
}

/** iptables or ip6tables, and the -restore tool the iptables backend feeds. */
async function checkXtables(name: "iptables" | "ip6tables"): Promise<Check> {
  const tool = findTool(name);
  const restore = findTool(`${name}-restore`);
  const fix = "apt-get install iptables (Alpine: apk add iptables)";
  if (!tool && !restore) return bad(name, "missing", false, `${name} and ${name}-restore not found (only needed when nft is absent)`, fix);
  const version = tool ? await toolVersion(tool, ["--version"]) : "";
  const m = /\((nf_tables|legacy)\)/.exec(version);
  const backend = m ? (m[1] === "nf_tables" ? "nf_tables backend" : "legacy backend (x_tables)") : "backend unknown";
  const parts = [tool ? `${tool}: ${version || "no version"}, ${backend}` : `${name} not found`];
  if (!restore) {
    parts.push(`${name}-restore not found`);
    return bad(name, "missing", false, parts.join("; "), fix);
  }
  parts.push(`${name}-restore: ${restore}`);
  return ok(name, false, parts.join("; "));
}

// ---------------------------------------------------------------------------------------------
// Scratch namespace and veth pair. Removed on every way out, signals included.

export interface Scratch {
  netns: string;
  hostIf: string;
  sandboxIf: string;
}

export function scratchNames(): Scratch {
  for (;;) {
    const id = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("");
    const s = { netns: `pwdoc-${id}`, hostIf: `pwdoc-${id}h`, sandboxIf: `pwdoc-${id}s` };
    if (!existsSync(netnsPath(s.netns)) && !existsSync(`/sys/class/net/${s.hostIf}`)) return s;
  }
}

/** What doctor made and must remove: only what it created itself, never a same-named stranger. */
interface Made {
  netns: boolean;
  link: boolean;
}

function teardownLines(s: Scratch, made: Made): string[] {
  return [...(made.link ? [`link del ${s.hostIf}`] : []), ...(made.netns ? [`netns del ${s.netns}`] : [])];
}

function leftOver(s: Scratch, made: Made): string[] {
  const left: string[] = [];
  if (made.netns && existsSync(netnsPath(s.netns))) left.push(`namespace ${s.netns}`);
  if (made.link && existsSync(`/sys/class/net/${s.hostIf}`)) left.push(`link ${s.hostIf}`);
  return left;
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

/**
 * Runs `fn` with a scratch namespace + veth pair (as far as they could be made) and removes both
 * afterwards, whatever happens: on return, on a throw, and on SIGINT/SIGTERM/SIGHUP/SIGQUIT.
 */
async function withScratch<T>(
  ip: string,
  cleanup: { scratch: Scratch | null; left: string[] },
  fn: (s: Scratch, steps: { netns: ToolResult | null; veth: ToolResult | null }) => Promise<T>,
): Promise<T> {
  const s = scratchNames();
  cleanup.scratch = s;
  const made: Made = { netns: false, link: false };
  const steps: { netns: ToolResult | null; veth: ToolResult | null } = { netns: null, veth: null };
  const onSignal = (sig: (typeof SIGNALS)[number]) => () => {
    // Synchronous on purpose: nothing else runs before the process ends.
    if (made.netns || made.link) Bun.spawnSync([ip, "-force", "-batch", "-"], { stdin: new TextEncoder().encode(teardownLines(s, made).join("\n") + "\n"), stdout: "ignore", stderr: "ignore" });
    process.exit(128 + SIGNAL_NUMBERS[sig]);
  };
  const handlers = SIGNALS.map((sig) => [sig, onSignal(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    // Marked before the attempt: an interrupted `netns add` may still have made it.
    made.netns = true;
    steps.netns = await run(ip, ["netns", "add", s.netns]);
    if (steps.netns.code !== 0) made.netns = existsSync(netnsPath(s.netns)) && steps.netns.code === -1;
    if (steps.netns.code === 0) {
      made.link = true;
      steps.veth = await run(ip, ["link", "add", s.hostIf, "type", "veth", "peer", "name", s.sandboxIf, "netns", s.netns]);
      if (steps.veth.code !== 0) made.link = existsSync(`/sys/class/net/${s.hostIf}`) && steps.veth.code === -1;
    }
    return await fn(s, steps);
  } finally {
    if (made.netns || made.link) await run(ip, ["-force", "-batch", "-"], teardownLines(s, made).join("\n") + "\n");
    cleanup.left = leftOver(s, made);
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

// ---------------------------------------------------------------------------------------------
// Rules inside the scratch namespace, with the renderers `run` uses: the kernel answers for itself.

const PROBE_PREFIX = "proxywall:00000000:";
const NFLOG_GROUP = 1;

/** Loads `ruleset` into the namespace with the backend's tools; null when accepted, else the failure. */
async function loadRuleset(nsPath: string, backend: Backend, tools: Record<string, string>, ruleset: Ruleset, families: ("ipv4" | "ipv6")[] = ["ipv4", "ipv6"]): Promise<ToolResult | null> {
  if (backend === "nft") {
    // The script as one argument: no temporary file, no /dev/stdin (absent in some images).
    const r = await runIn(nsPath, tools.nft!, [renderNft(ruleset)]);
    return r.code === 0 ? null : r;
  }
  for (const family of families) {
    const tool = family === "ipv4" ? tools["iptables-restore"]! : tools["ip6tables-restore"]!;
    const r = await runIn(nsPath, tool, ["-w", "5"], renderIptables(ruleset, family));
    if (r.code !== 0) return r;
  }
  return null;
}

const probe = (rule: Rule): Ruleset => ({ rules: [rule], hold: [] });
const PROBES = {
  conntrack: probe({ comment: "doctor: conntrack", ctState: ["established", "related"], action: { kind: "accept" } }),
  nflog: probe({ comment: "doctor: nflog", proto: "tcp", action: { kind: "log", target: { kind: "nflog", group: NFLOG_GROUP, prefix: PROBE_PREFIX }, limit: null } }),
  log: probe({ comment: "doctor: log", proto: "tcp", action: { kind: "log", target: { kind: "kmsg", prefix: PROBE_PREFIX }, limit: null } }),
  nfqueue: probe({ comment: "doctor: nfqueue", proto: "tcp", action: { kind: "queue", num: HOLD_QUEUE.num, limit: null } }),
};

const FEATURE_KEYS = Object.keys(ALL_FEATURES) as (keyof Features)[];
const NO_FEATURES = Object.fromEntries(FEATURE_KEYS.map((k) => [k, false])) as unknown as Features;

function fullRuleset(features: Features): Ruleset {
  return planRuleset({
    log: { kind: "nflog", group: NFLOG_GROUP, prefix: PROBE_PREFIX },
    logRate: 100,
    hold: HOLD_QUEUE,
    features,
  });
}

const said = (r: ToolResult) => firstLine(r.stderr.split("\n").filter((l) => /error|fail|not|unknown|invalid/i.test(l)).join("\n") || r.stderr) || `exit ${r.code}`;


const label = (b: Backend) => (b === "nft" ? "nft" : "iptables-restore/ip6tables-restore");

/**
 * Which backend run would install the fence with, and without which optional features, decided
 * the way run decides: the first backend that loads the full ruleset; else the one that loads the
 * rejects with the most optional features. `choice` is null when none loads even the rejects.
 */
async function evaluateFence(nsPath: string, candidates: readonly BackendChoice[]): Promise<{ choice: BackendChoice | null; missing: (keyof Features)[]; detail: string }> {
  const refused: string[] = [];
  for (const c of candidates) {
    const full = await loadRuleset(nsPath, c.backend, c.tools, fullRuleset(ALL_FEATURES));
    if (!full) {
      const fallback = refused.length > 0 ? `; run uses ${c.backend}, since ${refused.join("; ")}` : "";
      return { choice: c, missing: [], detail: `${label(c.backend)} loaded the full sandbox ruleset (rejects; ${FEATURE_KEYS.join(", ")})${fallback}` };
    }
    refused.push(`${label(c.backend)} refused it: ${said(full)}`);
  }
  let best: { choice: BackendChoice; missing: (keyof Features)[] } | null = null;
  const coreErrors: string[] = [];
  for (const c of candidates) {
    const core = await loadRuleset(nsPath, c.backend, c.tools, fullRuleset(NO_FEATURES));
    if (core) {
      coreErrors.push(`${label(c.backend)}: ${said(core)}`);
      continue;
    }
    // The rejects plus one optional feature at a time (the rate limit sits on the log step).
    const missing: (keyof Features)[] = [];
    for (const k of FEATURE_KEYS) {
      const one = { ...NO_FEATURES, [k]: true, ...(k === "limit" ? { log: true } : {}) };
      if (await loadRuleset(nsPath, c.backend, c.tools, fullRuleset(one))) missing.push(k);
    }
    if (!best || missing.length < best.missing.length) best = { choice: c, missing };
  }
  if (!best) return { choice: null, missing: [], detail: `no firewall backend loads even the bare rejects (${coreErrors.join("; ")})` };
  const without = best.missing.length > 0 ? best.missing.join(", ") : "some combination of optional features";
  return {
    choice: best.choice,
    missing: best.missing,
    detail: `${label(best.choice.backend)} loads the rejects without ${without}, which run then leaves out and reports as degraded; the full ruleset: ${refused.join("; ")}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Logging and the kernel log

/** net.netfilter.nf_log_all_netns exists only in the initial network namespace. */
function readLogAllNetns(): { present: boolean; value: string | null; netfilterDir: boolean } {
  const value = readText("/proc/sys/net/netfilter/nf_log_all_netns");
  return { present: value !== null, value, netfilterDir: existsSync("/proc/sys/net/netfilter") };
}

function checkKmsg(): Check {
  try {
    const fd = openSync("/dev/kmsg", fsc.O_RDONLY | fsc.O_NONBLOCK);
    closeSync(fd);
    return ok("kmsg", false, "/dev/kmsg opens for reading");
  } catch (e) {
    const code = errnoText(e);
    const why =
      code === "ENOENT"
        ? "/dev/kmsg does not exist (container runtimes usually leave it out)"
        : code === "EPERM" || code === "EACCES"
          ? `/dev/kmsg cannot be opened: ${code} (needs CAP_SYSLOG when kernel.dmesg_restrict=1; container runtimes block it)`
          : `/dev/kmsg cannot be opened: ${code}`;
    return bad("kmsg", "warn", false, why, "only --monitor kmsg needs it: run as root on the host; --monitor nflog (the default, auto) does not");
  }
}

function checkLogAllNetns(): Check {
  const s = readLogAllNetns();
  const FIX = "sysctl -w net.netfilter.nf_log_all_netns=1 (host-wide: leaks every namespace's packet logs into the host kernel log); only --monitor kmsg needs it";
  if (!s.present) {
    return bad(
      "nf-log-all-netns",
      "warn",
      false,
      s.netfilterDir
        ? "absent: proxywall is not in the initial network namespace (the sysctl exists only there), so it cannot be read or set from here"
        : "absent: /proc/sys/net/netfilter does not exist (netfilter not loaded, or /proc/sys not mounted)",
      "nothing, with --monitor nflog (the default, auto); for --monitor kmsg the host would have to set it",
    );
  }
  if (s.value === "1") return ok("nf-log-all-netns", false, "1: LOG lines from sandbox namespaces reach the kernel log");
  return bad("nf-log-all-netns", "warn", false, `${s.value}: LOG lines from sandbox namespaces never reach the kernel log (--monitor kmsg would see nothing)`, FIX);
}

function checkInitialNetns(): { check: Check; initial: boolean | null } {
  const s = readLogAllNetns();
  let self = "";
  let init = "";
  try {
    self = readlinkSync("/proc/self/ns/net");
    init = readlinkSync("/proc/1/ns/net");
  } catch {}
  const compare = self && init ? `; /proc/self/ns/net ${self === init ? "=" : "!="} /proc/1/ns/net (${self})` : self ? `; own namespace ${self}, /proc/1/ns/net unreadable` : "";
  if (s.present) return { check: ok("initial-netns", false, `yes: net.netfilter.nf_log_all_netns exists, which it does only in the initial network namespace${compare}`), initial: true };
  if (s.netfilterDir) {
    return {
      check: bad("initial-netns", "warn", false, `no: /proc/sys/net/netfilter has no nf_log_all_netns, so this is a container's or other non-initial network namespace${compare}`, "nothing for --monitor nflog (the default, auto); --monitor kmsg cannot work here"),
      initial: false,
    };
  }
  return { check: bad("initial-netns", "warn", false, `cannot tell: /proc/sys/net/netfilter is absent${compare}`, null), initial: null };
}

async function checkUserns(): Promise<Check> {
  const max = readText("/proc/sys/user/max_user_namespaces");
  if (max !== null && Number(max) <= 0) {
    return bad("userns", "warn", false, `user.max_user_namespaces = ${max}: user namespaces are disabled`, "sysctl -w user.max_user_namespaces=15000 (only needed for unprivileged use)");
  }
  const base = max === null ? "/proc/sys/user/max_user_namespaces not readable" : `user.max_user_namespaces = ${max}`;
  const unshare = findTool("unshare");
  if (!unshare) return bad("userns", "warn", false, `${base}; unshare not found, so not tried`, "apt-get install util-linux");
  const r = await run(unshare, ["-U", "true"]);
  if (r.code === 0) return ok("userns", false, `${base}; unshare -U true works`);
  const apparmor = readText("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  const hint = apparmor === "1" ? "kernel.apparmor_restrict_unprivileged_userns = 1 blocks them" : "a seccomp profile or sysctl blocks them";
  return bad("userns", "warn", false, `${base}; unshare -U true failed: ${said(r)}`, `${hint} (only needed for unprivileged use)`);
}

// ---------------------------------------------------------------------------------------------
// All checks

export interface DoctorOptions {
  /** The firewall backend to check; by default the one `run` would pick (nft when it is there). */
  backend?: Backend;
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const caps = effectiveCaps();
  const uid = process.getuid?.() ?? -1;
  const netAdmin = hasCap(CAP_NET_ADMIN, caps);
  const sysAdmin = hasCap(CAP_SYS_ADMIN, caps);
  const who = uid === 0 ? "uid 0" : `uid ${uid} (not root)`;
  const checks: Check[] = [
    netAdmin
      ? ok("cap-net-admin", true, `${who}, CAP_NET_ADMIN is effective (links, routes, firewall rules)`)
      : bad("cap-net-admin", "missing", true, `${who}, CAP_NET_ADMIN is not effective: links and firewall rules cannot be made`, RUN_AS_ROOT),
    sysAdmin
      ? ok("cap-sys-admin", true, `${who}, CAP_SYS_ADMIN is effective (ip netns add mounts the namespace)`)
      : bad("cap-sys-admin", "missing", true, `${who}, CAP_SYS_ADMIN is not effective: named network namespaces cannot be created`, RUN_AS_ROOT),
  ];

  const [ipCheck, nftCheck, v4Check, v6Check, usernsCheck] = await Promise.all([checkIp(), checkNft(), checkXtables("iptables"), checkXtables("ip6tables"), checkUserns()]);
  checks.push(ipCheck, nftCheck, v4Check, v6Check);

  const candidates = backendCandidates(opts.backend);
  const ip = findTool("ip");
  const canTry = netAdmin && sysAdmin && ip !== null && ipCheck.status === "ok";
  const notTried = (why: string) => `not tried: ${why}`;
  const whyNot = !netAdmin || !sysAdmin ? "needs CAP_NET_ADMIN and CAP_SYS_ADMIN" : ipCheck.status !== "ok" ? "needs iproute2's ip" : "skipped";
  let nflogWorks = false;
  const cleanup: { scratch: Scratch | null; left: string[] } = { scratch: null, left: [] };

  if (canTry) {
    const value = await withScratch(ip!, cleanup, async (s, steps) => {
      const out: Check[] = [];
      const nsPath = netnsPath(s.netns);
      const netnsOk = steps.netns?.code === 0;
      out.push(
        netnsOk
          ? ok("netns", true, `ip netns add ${s.netns} worked`)
          : bad("netns", "missing", true, steps.netns ? toolError(`ip netns add ${s.netns}`, steps.netns) : "not tried", "run as root on a kernel with network namespaces (CONFIG_NET_NS); in a container grant CAP_SYS_ADMIN and a writable /run"),
      );
      const vethOk = steps.veth?.code === 0;
      out.push(
        vethOk
          ? ok("veth", true, `ip link add ${s.hostIf} type veth peer name ${s.sandboxIf} netns ${s.netns} worked`)
          : bad("veth", "missing", true, steps.veth ? toolError("ip link add ... type veth", steps.veth) : notTried("no scratch namespace"), "modprobe veth (or a kernel with CONFIG_VETH)"),
      );
      if (!netnsOk) {
        for (const name of ["fence", "conntrack", "nflog", "log", "nfqueue"] as const) {
          out.push(bad(name, name === "fence" ? "missing" : "warn", name === "fence", notTried("no scratch namespace"), name === "fence" ? "make the netns check pass first" : null));
        }
        return out;
      }
      if (candidates.length === 0) {
        const none = opts.backend === "nft" ? "nft is not installed" : opts.backend === "iptables" ? "iptables-restore or ip6tables-restore is not installed" : "neither nft nor iptables-restore + ip6tables-restore is installed";
        out.push(bad("fence", "missing", true, none, opts.backend === "iptables" ? "apt-get install iptables" : "apt-get install nftables"));
        for (const name of ["conntrack", "nflog", "log", "nfqueue"] as const) out.push(bad(name, "warn", false, notTried("no firewall tool"), "apt-get install nftables"));
        return out;
      }
      const fence = await evaluateFence(nsPath, candidates);
      out.push(
        fence.choice
          ? ok("fence", true, `in ${s.netns}, ${fence.detail}`)
          : bad("fence", "missing", true, fence.detail, "modprobe nf_tables nft_reject_inet (or ip_tables ip6_tables ipt_REJECT ip6t_REJECT), or install nftables"),
      );
      // The single-feature checks ask the backend run would use (the first one when none works).
      const { backend, tools } = fence.choice ?? candidates[0]!;
      const how = label(backend);
      const ct = await loadRuleset(nsPath, backend, tools, PROBES.conntrack, ["ipv4"]);
      const nflogRule = await loadRuleset(nsPath, backend, tools, PROBES.nflog, ["ipv4"]);
      const logRule = await loadRuleset(nsPath, backend, tools, PROBES.log, ["ipv4"]);
      const queueRule = await loadRuleset(nsPath, backend, tools, PROBES.nfqueue, ["ipv4"]);
      const nflogBind = await probeNflogBind(nsPath, NFLOG_GROUP);
      out.push(ct ? bad("conntrack", "missing", false, `${how} refused a ct state rule: ${said(ct)}`, "modprobe nf_conntrack (replies to connections into the sandbox are dropped without it)") : ok("conntrack", false, `a ct state established,related rule loads (${how})`));
      if (nflogRule) {
        out.push(bad("nflog", "missing", false, `${how} refused an NFLOG rule (log group ${NFLOG_GROUP}): ${said(nflogRule)}`, "modprobe nfnetlink_log (and nft_log, or xt_NFLOG for iptables)"));
      } else if (nflogBind) {
        out.push(bad("nflog", "missing", false, `the NFLOG rule loads, but binding an NFLOG netlink socket failed: ${nflogBind}`, "modprobe nfnetlink_log"));
      } else {
        nflogWorks = true;
        out.push(ok("nflog", false, `${backend === "nft" ? `a log group ${NFLOG_GROUP} rule` : "an NFLOG rule"} loads and an NFLOG netlink socket binds group ${NFLOG_GROUP}`));
      }
      out.push(logRule ? bad("log", "missing", false, `${how} refused a LOG rule: ${said(logRule)}`, backend === "nft" ? "modprobe nft_log nf_log_syslog" : "modprobe xt_LOG nf_log_syslog") : ok("log", false, `a ${backend === "nft" ? "log (printk)" : "LOG target"} rule loads (${how}); only --monitor kmsg uses it`));
      const queueFix = backend === "nft" ? `modprobe nft_queue nfnetlink_queue (a kernel with CONFIG_NFT_QUEUE)${opts.backend === "nft" ? ", or use --backend iptables if its NFQUEUE target works" : ", or install iptables: run falls back to its NFQUEUE target"}` : "modprobe xt_NFQUEUE nfnetlink_queue";
      out.push(
        queueRule
          ? bad("nfqueue", "missing", false, `${how} refused an NFQUEUE rule (queue num ${HOLD_QUEUE.num} bypass), so bypass attempts cannot be held for attribution to a process: ${said(queueRule)}`, queueFix)
          : ok("nfqueue", false, `${backend === "nft" ? `a queue num ${HOLD_QUEUE.num} bypass` : "an NFQUEUE --queue-bypass"} rule loads (${how}); attribution can hold TCP SYNs`),
      );
      return out;
    });
    checks.push(...value);
  } else {
    const fixNs = RUN_AS_ROOT;
    checks.push(
      bad("netns", "missing", true, notTried(whyNot), whyNot === "needs iproute2's ip" ? "apt-get install iproute2" : fixNs),
      bad("veth", "missing", true, notTried(whyNot), whyNot === "needs iproute2's ip" ? "apt-get install iproute2" : fixNs),
      bad("fence", "missing", true, notTried(`${whyNot} (rules are loaded into a scratch namespace)`), fixNs),
      bad("conntrack", "warn", false, notTried(whyNot), null),
      bad("nflog", "warn", false, notTried(whyNot), null),
      bad("log", "warn", false, notTried(whyNot), null),
      bad("nfqueue", "warn", false, notTried(whyNot), null),
    );
  }

  const kmsg = checkKmsg();
  const allNetns = checkLogAllNetns();
  const initial = checkInitialNetns();
  checks.push(kmsg, allNetns, initial.check, usernsCheck);

  // Which monitor source would work for `run --monitor ...`.
  const kmsgWorks = kmsg.status === "ok" && initial.initial === true && allNetns.status === "ok";
  const kmsgWhyNot = [kmsg.status !== "ok" ? "/dev/kmsg unreadable" : "", initial.initial !== true ? "not in the initial network namespace" : "", allNetns.status !== "ok" ? "nf_log_all_netns is not 1" : ""].filter(Boolean).join(", ");
  const nflogWhyNot = !netAdmin ? "no CAP_NET_ADMIN" : checks.find((c) => c.name === "nflog")?.status === "ok" ? "" : "NFLOG not supported or not checked";
  if (nflogWorks) {
    checks.push(ok("monitor", false, `nflog (the default, --monitor auto) works${kmsgWorks ? "; kmsg works too" : `; kmsg would not (${kmsgWhyNot})`}`));
  } else if (kmsgWorks) {
    checks.push(bad("monitor", "warn", false, `only kmsg works (nflog: ${nflogWhyNot})`, "run auto-selects kmsg (or pass --monitor kmsg), or modprobe nfnetlink_log for nflog"));
  } else {
    checks.push(
      bad("monitor", "warn", false, `none would report bypass attempts (nflog: ${nflogWhyNot}; kmsg: ${kmsgWhyNot})`, netAdmin ? "modprobe nfnetlink_log" : RUN_AS_ROOT),
    );
  }

  checks.push(checkRealtime());

  const sc = cleanup.scratch;
  if (!sc) checks.push(ok("cleanup", true, "nothing was created"));
  else if (cleanup.left.length > 0) checks.push(bad("cleanup", "missing", true, `left behind: ${cleanup.left.join(", ")}`, `ip link del ${sc.hostIf}; ip netns del ${sc.netns}`));
  else checks.push(ok("cleanup", true, `scratch namespace ${sc.netns} and its veth pair removed`));

  const order = new Map(CHECK_NAMES.map((n, i) => [n, i]));
  checks.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return { ok: checks.every((c) => !c.required || c.status === "ok"), checks };
}
