// `proxywall doctor`: what this machine lacks for a fenced sandbox, and how to fix it.
//
// Exit code: 0 when `proxywall run` can build a fenced sandbox here (every required check is ok),
// 1 (EXIT.failure) when it cannot. A missing capability or tool is a finding, not a usage error:
// usage errors (unknown flags) still end with 2 as everywhere else.
import { defineCommand } from "citty";
import * as v from "valibot";
import { runDoctor } from "../doctor/doctor.ts";
import { DoctorReport, type Check } from "../doctor/report.ts";
import { validate } from "./argv.ts";
import { EXIT } from "../exit-codes.ts";

const Options = v.object({
  json: v.boolean(),
  backend: v.optional(v.picklist(["nft", "iptables"], "must be nft or iptables")),
  stateDir: v.optional(v.pipe(v.string(), v.startsWith("/", "must be an absolute path"))),
});

const MARK: Record<Check["status"], string> = { ok: "ok", missing: "MISSING", warn: "warn" };

/** One line per check, aligned; failing checks get an indented `fix:` line. */
export function renderHuman(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines: string[] = [];
  for (const c of report.checks) {
    const tag = c.required || c.status === "ok" ? "" : "optional: ";
    lines.push(`${MARK[c.status].padEnd(7)}  ${c.name.padEnd(width)}  ${tag}${c.detail}`);
    if (c.fix && c.status !== "ok") lines.push(`${"".padEnd(7)}  ${"".padEnd(width)}  fix: ${c.fix}`);
  }
  lines.push("");
  lines.push(summary(report));
  return lines.join("\n") + "\n";
}

export function summary(report: DoctorReport): string {
  if (!report.ok) {
    const failed = report.checks.filter((c) => c.required && c.status !== "ok").map((c) => c.name);
    return `no: proxywall run cannot build a fenced sandbox here (failed: ${failed.join(", ")})`;
  }
  const monitor = report.checks.find((c) => c.name === "monitor");
  const reports = monitor?.status === "ok" ? "bypass attempts are reported" : "but bypass attempts may not be reported (see monitor)";
  return `yes: proxywall run can build a fenced sandbox here; ${reports}`;
}

export default defineCommand({
  meta: { name: "doctor", description: "Check whether this machine can build a fenced sandbox (privileges, tools, kernel features, log monitors); exit 0 if it can, 1 if not" },
  args: {
    backend: { type: "string", description: "firewall backend to check: nft, or iptables (iptables-restore + ip6tables-restore); default: the one run picks", valueHint: "nft|iptables" },
    "state-dir": { type: "string", description: "the state directory run would use (default /run/proxywall): checked for writing", valueHint: "DIR" },
    json: { type: "boolean", description: "print one JSON document { ok, checks: [{ name, status, required, detail, fix }] }", default: false },
  },
  async run({ args }) {
    const o = validate(Options, { json: Boolean(args.json), backend: args.backend, stateDir: args["state-dir"] });
    const report = v.parse(DoctorReport, await runDoctor({ backend: o.backend, stateDir: o.stateDir }));
    if (o.json) console.log(JSON.stringify(report));
    else process.stdout.write(renderHuman(report));
    return report.ok ? EXIT.ok : EXIT.failure;
  },
});
