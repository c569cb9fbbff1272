// The report for a terminal: plain lines and padded columns, no markup. Control characters from
// events are shown as "?" so that a crafted executable name cannot move the cursor or recolour.
import { hostPort, type Report, type SandboxSummary } from "./aggregate.ts";
import { allHints, ancestry, bytes, countSuffix, destName, duration, kernelCount, overallVerdict, plural, programName, sandboxVerdict, type Level } from "./format.ts";

export const MAX_ROWS = 50;
const MAX_DESTS = 5;
const WORD: Record<Level, string> = { bypass: "BYPASS", warn: "WARNING", ok: "OK" };

/** Text from an event, safe to print: no control characters, no line breaks. */
export const clean = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, "?");

function columns(rows: string[][], indent = "  "): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd());
}

function capped(rows: string[][]): string[][] {
  if (rows.length <= MAX_ROWS) return rows;
  return [...rows.slice(0, MAX_ROWS), [`…and ${rows.length - MAX_ROWS} more`]];
}

function sandbox(s: SandboxSummary): string[] {
  const v = sandboxVerdict(s);
  const out = [`sandbox ${clean(s.id)}: ${WORD[v.level]}: ${v.text}`];
  const r = s.ready;
  if (r) {
    const ran = s.closed ? `, ran ${duration(s.closed.duration_ms)}` : "";
    out.push(`  proxy ${clean(r.proxy.url)}${r.proxy.builtin ? " (built-in)" : " (external)"}, backend ${r.backend ?? "none"}, monitor ${r.monitor}, detection ${r.detection}${ran}`);
  }
  if (s.programs.length > 0) {
    out.push("", "  bypass attempts:");
    const rows = s.programs.map((p) => {
      const dests = p.dests.slice(0, MAX_DESTS).map((d) => `${destName(d)}${countSuffix(d.count)}`);
      if (p.dests.length > MAX_DESTS) dests.push(`and ${p.dests.length - MAX_DESTS} more`);
      const by = ancestry(p);
      return [clean(programName(p)), by === "" ? "" : `(${clean(by)})`, String(p.attempts), clean(dests.join(", "))];
    });
    out.push(...columns(capped([["program", "started by", "attempts", "destinations"], ...rows]), "    "));
    const kernel = kernelCount(s);
    if (kernel !== null && kernel > s.bypass.events) out.push(`    the kernel counted ${plural(kernel, "rejected packet")} (the log rate limit dropped some events)`);
  }
  if (s.proxy.dests.length > 0) {
    out.push("", `  proxy: ${s.proxy.allowed} allowed, ${s.proxy.refused} refused, ${bytes(s.proxy.bytesUp)} up, ${bytes(s.proxy.bytesDown)} down`);
    const rows = s.proxy.dests.map((d) => [
      d.host === "*" ? "other destinations" : clean(hostPort(d.host, d.port)),
      `${d.allowed ? "allowed" : "REFUSED"} ${clean(d.outcome)}${d.rules.length > 0 ? ` (rule ${clean(d.rules.join(", "))})` : ""}`,
      String(d.count),
      bytes(d.bytesUp),
      bytes(d.bytesDown),
      d.statuses.join(","),
    ]);
    out.push(...columns(capped([["destination", "outcome", "requests", "up", "down", "status"], ...rows]), "    "));
  }
  if (s.degraded.length > 0) {
    out.push("", "  degraded:");
    for (const d of s.degraded) out.push(`    ${clean(d.component)}: ${clean(d.missing)}`, `      fix: ${clean(d.fix)}`, `      still protected: ${clean(d.still_protected)}`);
  }
  return out;
}

export function renderText(r: Report): string {
  const v = overallVerdict(r);
  const out = [`proxywall report: ${WORD[v.level]}: ${v.text}`];
  for (const s of r.sandboxes) out.push("", ...sandbox(s));
  const hints = allHints(r);
  if (hints.length > 0) {
    out.push("", "fixes:");
    for (const h of hints) out.push(`  - ${clean(h.hint)} (${plural(h.count, "attempt")})`);
  }
  if (r.skipped.count > 0) out.push("", `${plural(r.skipped.count, "line")} that are not proxywall events skipped`);
  if (r.otherSandboxLines > 0) out.push("", `${plural(r.otherSandboxLines, "line")} of sandboxes beyond the first ${r.sandboxes.length} not counted`);
  return `${out.join("\n")}\n`;
}
