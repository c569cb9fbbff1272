// CI without a service: a run inside GitHub Actions leaves its report where the job shows it.
//   - GITHUB_STEP_SUMMARY set: at exit, the markdown report of the run's own events is appended
//     to that file (the job's summary page);
//   - GITHUB_ACTIONS=true: at exit, each distinct bypass (program and destination) becomes one
//     `::warning` workflow command on stdout, once however often it was tried; GitHub shows them
//     as annotations. At exit rather than as they come, so they never land inside CMD's output.
// The events are counted as they are written (a tap on the event writer) in the report's bounded
// aggregate, so a long run keeps constant memory. Other CI systems: the JSON lines and
// `proxywall report --format markdown` do the same by hand (README, "In CI").
import { appendFileSync, writeSync } from "node:fs";
import { diag } from "../diag.ts";
import type { EventWriter } from "../events/event-writer.ts";
import { ReportAggregator, type Report } from "../report/aggregate.ts";
import { baseName } from "../report/format.ts";
import { renderMarkdown } from "../report/markdown.ts";

type Env = Record<string, string | undefined>;

/** At most this many annotations; GitHub shows only the first ten of a kind per step anyway. */
export const MAX_ANNOTATIONS = 20;

/** Workflow-command escaping of a message (https://github.com/actions/toolkit, command.ts). */
export const escapeData = (s: string) => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
/** ... and of a property value (title=...), where ':' and ',' end the value. */
export const escapeProperty = (s: string) => escapeData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");

/** One `::warning` line per distinct (program, destination), most tried first, at most `max`. */
export function annotations(report: Report, max = MAX_ANNOTATIONS): string[] {
  const seen = new Map<string, { program: string; dest: string; count: number; hint: string | null }>();
  for (const s of report.sandboxes) {
    const hint = s.hints[0]?.hint ?? null;
    for (const p of s.programs) {
      const program = p.exe !== null ? baseName(p.exe) : p.why === null ? "an unknown program" : `an unknown program (${p.why})`;
      for (const d of p.dests) {
        const dest = d.proto === "*" ? "other destinations" : `${d.proto} ${d.addr.includes(":") ? `[${d.addr}]` : d.addr}:${d.port}${d.dnsQueries.length > 0 ? ` (DNS ${d.dnsQueries.join(", ")})` : ""}`;
        const key = `${program}\0${dest}`;
        const a = seen.get(key);
        if (a) a.count += d.count;
        else seen.set(key, { program, dest, count: d.count, hint });
      }
    }
  }
  const all = [...seen.values()].sort((a, b) => b.count - a.count);
  const lines = all.slice(0, max).map((a) => {
    const times = a.count === 1 ? "once" : `${a.count.toLocaleString("en-US")} times`;
    const message = `${a.program} tried ${a.dest} directly, ${times}; the sandbox rejected it.${a.hint ? ` Fix: ${a.hint}` : ""}`;
    return `::warning title=${escapeProperty(`proxywall: ${a.program} bypassed the proxy`)}::${escapeData(message)}`;
  });
  if (all.length > max) lines.push(`::warning title=${escapeProperty("proxywall: more bypasses")}::${escapeData(`${all.length - max} more program and destination pairs; see the job summary or the event lines`)}`);
  return lines;
}

export interface CiSummary {
  /** Writes the summary and the annotations; call once, after the last event line. */
  end(): void;
}

/** Starts counting `events`' lines when a CI variable asks for a summary, else returns null. */
export function startCiSummary(events: EventWriter, env: Env = process.env): CiSummary | null {
  const summaryFile = env.GITHUB_STEP_SUMMARY || null;
  const annotate = env.GITHUB_ACTIONS === "true";
  if (summaryFile === null && !annotate) return null;
  const agg = new ReportAggregator();
  events.tap((e) => agg.addEvent(e));
  return {
    end() {
      const report = agg.report();
      if (summaryFile !== null) {
        try {
          appendFileSync(summaryFile, `${renderMarkdown(report)}\n`);
        } catch (e) {
          diag.warn(`cannot append the report to GITHUB_STEP_SUMMARY (${summaryFile}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      if (annotate) {
        const lines = annotations(report);
        // A line of its own even when CMD's output did not end with a newline.
        if (lines.length > 0) writeLines(`\n${lines.join("\n")}\n`);
      }
    },
  };
}

function writeLines(text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(1, bytes, off, bytes.length - off);
  } catch (e) {
    diag.warn(`cannot write the GitHub annotations to stdout: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
