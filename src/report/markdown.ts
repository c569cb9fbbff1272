// The report as GitHub-flavoured markdown, for a CI job summary or a pull-request comment: the
// verdict, then per sandbox its programs and their destinations, the proxy's destinations, what
// was degraded; then each fix that applies, once. Everything that comes from an event is escaped.
import { hostPort, type Report, type SandboxSummary } from "./aggregate.ts";
import { allHints, ancestry, bytes, countSuffix, destName, duration, kernelCount, overallVerdict, plural, programName, sandboxVerdict, type Level } from "./format.ts";

/** Rows per table; the rest is counted below it. */
export const MAX_ROWS = 50;
/** Destinations listed per program. */
const MAX_DESTS = 5;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

const ICON: Record<Level, string> = { bypass: "❌", warn: "⚠️", ok: "✅" };

/**
 * Text from an event as an inline code span that is safe in a table cell: no line breaks, pipes
 * escaped (GFM splits cells before it reads code spans), and a backtick fence longer than any run
 * of backticks inside.
 */
export function code(s: string): string {
  const t = s.replace(/[\r\n\t\u2028\u2029]+/g, " ").replace(CONTROL, "?").replace(/\|/g, "\\|");
  if (t === "") return "";
  const longest = Math.max(0, ...(t.match(/`+/g) ?? []).map((r) => r.length));
  const fence = "`".repeat(longest + 1);
  const pad = t.startsWith("`") || t.endsWith("`") || (t.startsWith(" ") && t.endsWith(" ")) ? " " : "";
  return `${fence}${pad}${t}${pad}${fence}`;
}

/**
 * Text from an event as plain markdown text, one line: the characters that make emphasis, links,
 * code, HTML, entities, strikethrough or table cells escaped; what would start a block (a heading,
 * a list) escaped at the start; and bare URLs and e-mail addresses kept from becoming links.
 */
export function text(s: string): string {
  return s
    .replace(/[\r\n\t\u2028\u2029]+/g, " ")
    .replace(CONTROL, "?")
    .replace(/[\\`*_[\]<>|~&@]/g, (c) => `\\${c}`)
    .replace(/:(?=\/\/)/g, "\\:")
    .replace(/(?<=www)\./gi, "\\.")
    .replace(/^(\s*)([#+=-]|\d+(?=[.)]))/, "$1\\$2");
}

function table(header: string[], align: ("l" | "r")[], rows: string[][]): string[] {
  const out = [`| ${header.join(" | ")} |`, `|${align.map((a) => (a === "r" ? "---:" : "---")).join("|")}|`];
  for (const r of rows.slice(0, MAX_ROWS)) out.push(`| ${r.map((c) => (c === "" ? " " : c)).join(" | ")} |`);
  if (rows.length > MAX_ROWS) out.push("", `…and ${rows.length - MAX_ROWS} more rows (the HTML report has them all).`);
  return out;
}

function sandbox(s: SandboxSummary): string[] {
  const v = sandboxVerdict(s);
  const out = [`### ${ICON[v.level]} Sandbox ${code(s.id)}: ${v.text}`, ""];
  const r = s.ready;
  if (r) {
    const facts = [`proxy ${code(r.proxy.url)}${r.proxy.builtin ? " (built-in)" : " (external)"}`, `backend ${code(r.backend ?? "none")}`, `monitor ${code(r.monitor)}`, `detection ${code(r.detection)}`];
    if (s.closed) facts.push(`ran ${duration(s.closed.duration_ms)}`);
    out.push(facts.join(" · "), "");
  }
  if (s.programs.length > 0) {
    out.push("**Bypass attempts**", "");
    const rows = s.programs.map((p) => {
      const dests = p.dests.slice(0, MAX_DESTS).map((d) => `${code(destName(d))}${countSuffix(d.count)}`);
      if (p.dests.length > MAX_DESTS) dests.push(`and ${p.dests.length - MAX_DESTS} more`);
      return [code(programName(p)), code(ancestry(p)), p.attempts.toLocaleString("en-US"), dests.join(", ")];
    });
    out.push(...table(["Program", "Started by", "Attempts", "Destinations"], ["l", "l", "r", "l"], rows), "");
    const kernel = kernelCount(s);
    if (kernel !== null && kernel > s.bypass.events) out.push(`The kernel counted ${plural(kernel, "rejected packet")}: ${(kernel - s.bypass.events).toLocaleString("en-US")} beyond the events (log rate limit).`, "");
  }
  if (s.proxy.dests.length > 0) {
    out.push(`**Proxy**: ${plural(s.proxy.allowed, "request")} allowed, ${s.proxy.refused} refused; ${bytes(s.proxy.bytesUp)} up, ${bytes(s.proxy.bytesDown)} down`, "");
    const rows = s.proxy.dests.map((d) => [
      d.host === "*" ? "other destinations" : code(hostPort(d.host, d.port)),
      `${d.allowed ? "✅" : "⛔"} ${code(d.outcome)}${d.rules.length > 0 ? ` (rule ${d.rules.map(code).join(", ")})` : ""}`,
      d.count.toLocaleString("en-US"),
      bytes(d.bytesUp),
      bytes(d.bytesDown),
      d.statuses.join(", "),
      d.methods.map(code).join(", "),
    ]);
    out.push(...table(["Destination", "Outcome", "Requests", "Up", "Down", "Status", "Method"], ["l", "l", "r", "r", "r", "l", "l"], rows), "");
  }
  if (s.degraded.length > 0) {
    out.push("**Degraded**", "");
    const rows = s.degraded.map((d) => [code(d.component), text(d.missing), text(d.fix), text(d.still_protected)]);
    out.push(...table(["Part", "Missing", "Fix", "Still protected"], ["l", "l", "l", "l"], rows), "");
  }
  return out;
}

export function renderMarkdown(r: Report): string {
  const v = overallVerdict(r);
  const out = ["## proxywall report", "", `**${ICON[v.level]} ${v.text}**`, ""];
  for (const s of r.sandboxes) out.push(...sandbox(s));
  const hints = allHints(r);
  if (hints.length > 0) {
    out.push("### Fixes", "");
    for (const h of hints) out.push(`- ${text(h.hint)} (${plural(h.count, "attempt")})`);
    out.push("");
  }
  const notes: string[] = [];
  if (r.skipped.count > 0) notes.push(`${plural(r.skipped.count, "line")} that are not proxywall events skipped`);
  if (r.otherSandboxLines > 0) notes.push(`${plural(r.otherSandboxLines, "line")} of sandboxes beyond the first ${r.sandboxes.length} not counted`);
  if (notes.length > 0) out.push(`_${notes.join("; ")}._`, "");
  return `${out.join("\n").trimEnd()}\n`;
}
