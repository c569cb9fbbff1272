// The doctor's report, as data: `doctor --json` prints exactly one DoctorReport. And the small
// helpers every check uses.
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { inNetns } from "../sys/netns.ts";
import { startTool, toolSaid, type ToolResult } from "../sys/tools.ts";

export const CHECK_NAMES = [
  "cap-net-admin",
  "cap-sys-admin",
  "ip",
  "nft",
  "iptables",
  "ip6tables",
  "state-dir",
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


export { run, runIn };

export function firstLine(s: string): string {
  return s.trim().split("\n")[0]?.trim() ?? "";
}

export function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code}` : String((e as Error)?.message ?? e);
}

export const ok = (name: CheckName, required: boolean, detail: string): Check => ({ name, status: "ok", required, detail, fix: null });
export const bad = (name: CheckName, status: "missing" | "warn", required: boolean, detail: string, fix: string | null): Check => ({ name, status, required, detail, fix });

/** A check that could not run: says what it needs, and gives no fix for a finding it never made. */
export const notChecked = (name: CheckName, required: boolean, needs: string): Check => bad(name, required ? "missing" : "warn", required, `not checked: needs ${needs}`, null);

/** What the tool said, in its own words. */
export const said = (r: ToolResult) => toolSaid(r.stderr) || `exit ${r.code}`;

export const RUN_AS_ROOT = "run as root (or grant CAP_NET_ADMIN and CAP_SYS_ADMIN, e.g. docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN)";
