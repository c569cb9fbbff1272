// `--event-format human`: short lines for a person watching a terminal, instead of JSON. One line
// when the sandbox is up, one per bypass (with the fix once per kind of mistake, not on every
// line), one per refused proxy request, one per degraded part, and a closing summary: attempts per
// program and destination, the kernel's exact totals, the exit status. Allowed requests and the
// periodic summaries say nothing here: the JSON formats and `proxywall report` have them.
//
// Lines go through consola (consola/core: no tty probing, no colour library), whose message types
// pick the colour; colour only when asked (human.ts decides: a colour terminal, NO_COLOR unset).
// Text from events (executable names, hosts, errors) has its control characters replaced, so a
// crafted name cannot move the cursor or recolour the terminal. The counts for the summary are the
// report's own bounded aggregate (src/report/aggregate.ts), so a long run keeps constant memory.
import { createConsola, type ConsolaInstance, type LogObject } from "consola/core";
import { hostPort, ReportAggregator, type SandboxSummary } from "../../report/aggregate.ts";
import { ancestry, countSuffix, destName, duration, kernelCount, plural, programName } from "../../report/format.ts";
import { clean } from "../../report/text.ts";
import type { BypassDetect, BypassTotals, EventLine, ProcessInfo, ProxyConnect, SandboxClosed, SandboxReady } from "../schema.ts";
import type { EventFormat } from "./index.ts";

/** Programs and destinations per program the closing summary lists; the rest are counted. */
export const SUMMARY_PROGRAMS = 10;
export const SUMMARY_DESTS = 4;

const SGR: Record<string, [number, number]> = {
  fail: [31, 39], // red: a bypass was blocked
  warn: [33, 39], // yellow: a refused request, a degraded part
  success: [32, 39], // green: up, or a clean summary
  info: [2, 22], // dim: the fix for a kind of mistake
  box: [1, 22], // bold: the summary's first line when something was blocked
};

/** `curl[1234]`, or why the process is not known. */
function who(p: ProcessInfo): string {
  if (p === null) return "(no process)";
  if (!p.resolved) return "(unknown process)";
  const name = p.exe === null ? (p.cmdline[0] ?? "?") : p.exe.replace(/ \(deleted\)$/, "");
  return `${clean(name.split("/").pop() || name)}[${p.pid}]`;
}

export class HumanFormat implements EventFormat {
  readonly name = "human" as const;
  /** Colour on or off; human.ts sets it once the destination is open. */
  color: boolean;
  private readonly out: string[] = [];
  private readonly consola: ConsolaInstance;
  private readonly hintsShown = new Set<string>();
  private readonly agg = new ReportAggregator();
  /** Sandboxes whose ready line was seen (monitor has none: its summary comes with the final totals). */
  private readonly ready = new Set<string>();

  constructor(opts: { color: boolean }) {
    this.color = opts.color;
    this.consola = createConsola({ level: 3, throttle: 0, reporters: [{ log: (o) => this.out.push(this.render(o)) }] });
  }

  schema(): null {
    return null;
  }

  /** The event's lines, joined (written as one), or "" when it has nothing to show. */
  line(e: EventLine): string {
    this.agg.addEvent(e);
    this.say(e);
    const text = this.out.join("\n");
    this.out.length = 0;
    return text;
  }

  private render(o: LogObject): string {
    const [head, rest] = o.args as [string, string | undefined];
    const sgr = this.color ? SGR[o.type] : undefined;
    const painted = sgr ? `\x1b[${sgr[0]}m${head}\x1b[${sgr[1]}m` : head;
    return `proxywall: ${painted}${rest ?? ""}`;
  }

  private say(e: EventLine): void {
    switch (e.event) {
      case "sandbox_ready":
        return this.up(e);
      case "bypass_detect":
        return this.bypass(e);
      case "proxy_connect":
        return this.proxied(e);
      case "degraded":
        this.consola.warn(`degraded ${clean(e.component)}`, `: ${clean(e.missing)}; fix: ${clean(e.fix)}`);
        return;
      case "bypass_totals":
        return this.totals(e);
      case "sandbox_closed":
        return this.closed(e);
      case "bypass_summary":
        return;
    }
  }

  private up(e: SandboxReady): void {
    this.ready.add(e.sandbox);
    const parts = [`proxy ${clean(e.proxy.url)}${e.proxy.builtin ? "" : " (external)"}`, `fence ${e.backend ?? "none"}`, `monitor ${e.monitor}`, `detection ${e.detection}`];
    if (e.degraded.length > 0) parts.push(`degraded: ${e.degraded.map(clean).join(", ")}`);
    this.consola.success(`sandbox ${clean(e.sandbox)} up`, ` in ${duration(e.setup_ms)}: ${parts.join(", ")}`);
  }

  private bypass(e: BypassDetect): void {
    const dns = e.dns_query !== null ? ` (DNS ${clean(e.dns_query)})` : "";
    const verb = e.action === "observe" ? "seen" : "blocked";
    this.consola.fail(verb, ` ${who(e.process)} -> ${clean(hostPort(e.dst_addr, e.dst_port))}/${clean(e.proto)}${dns}`);
    // The fix once per kind of mistake: the hint is chosen from the packet's kind.
    if (!this.hintsShown.has(e.hint) && this.hintsShown.size < 50) {
      this.hintsShown.add(e.hint);
      this.consola.info(`  fix: ${clean(e.hint)}`);
    }
  }

  private proxied(e: ProxyConnect): void {
    if (e.outcome === "ok") return;
    // Older lines lack rule and reason (report reads them as null; so does this).
    const rule = (e.rule ?? null) as string | null;
    const reason = (e.reason ?? null) as string | null;
    const why = [rule !== null ? `rule ${clean(rule)}` : null, reason !== null ? clean(reason) : null, e.error !== null ? clean(e.error) : null].filter((x) => x !== null).join(": ");
    const verb = e.outcome === "would_deny" ? "would refuse" : "refused";
    const what = e.outcome === "would_deny" ? "audit" : clean(e.outcome);
    this.consola.warn(verb, ` ${who(e.process)} ${clean(e.method)} ${clean(hostPort(e.dst_host, e.dst_port))}: ${what}, ${e.status}${why ? ` (${why})` : ""}`);
  }

  private totals(e: BypassTotals): void {
    // monitor ends with its final totals and writes no sandbox_closed: its summary comes here.
    if (e.final && !this.ready.has(e.sandbox)) this.summary(e.sandbox, null);
  }

  private closed(e: SandboxClosed): void {
    this.summary(e.sandbox, e);
    this.ready.delete(e.sandbox);
  }

  /** The closing summary of one sandbox, from the bounded aggregate. */
  private summary(id: string, closed: SandboxClosed | null): void {
    const s = this.agg.report().sandboxes.find((x) => x.id === id);
    if (!s) return;
    const attempts = Math.max(s.bypass.events, kernelCount(s) ?? 0);
    const end = closed === null ? "stopped" : `closed after ${duration(closed.duration_ms)}`;
    const status = closed === null ? "" : `: ${closed.cmd_signal !== null ? `CMD died of ${clean(closed.cmd_signal)}` : closed.cmd_exit_code !== null ? `CMD exited ${closed.cmd_exit_code}` : "CMD did not run"}, proxywall exits ${closed.exit_code}`;
    const head = `sandbox ${clean(id)} ${end}`;
    if (attempts > 0) this.consola.box(head, status);
    else this.consola.success(head, status);
    this.consola.log(`  ${counts(s, attempts)}`);
    for (const p of s.programs.slice(0, SUMMARY_PROGRAMS)) {
      const dests = p.dests.slice(0, SUMMARY_DESTS).map((d) => `${destName(d)}${countSuffix(d.count)}`);
      if (p.dests.length > SUMMARY_DESTS) dests.push(`${p.dests.length - SUMMARY_DESTS} more`);
      const by = ancestry(p);
      this.consola.log(`    ${clean(programName(p))}${by ? ` (started by ${clean(by)})` : ""}: ${plural(p.attempts, "attempt")}: ${clean(dests.join(", "))}`);
    }
    if (s.programs.length > SUMMARY_PROGRAMS) this.consola.log(`    and ${plural(s.programs.length - SUMMARY_PROGRAMS, "more program")}`);
    if (closed !== null && closed.cleanup.length > 0) this.consola.warn("  left behind", `: ${closed.cleanup.map(clean).join("; ")}`);
  }
}

/** The summary's counts: attempts (the kernel's exact count where it is known), proxied requests. */
function counts(s: SandboxSummary, attempts: number): string {
  const verb = s.bypass.observed === s.bypass.events && s.bypass.events > 0 ? "seen" : "blocked";
  const parts = [`${plural(attempts, "bypass attempt")} ${verb}`];
  const t = s.totals;
  if (t !== null && t.tcp !== null && t.udp !== null) {
    const extra = (kernelCount(s) ?? 0) > s.bypass.events ? `; ${plural(s.bypass.events, "event")} written, the log rate limit dropped the rest` : "";
    parts[0] += ` (kernel counters: ${t.tcp} tcp, ${t.udp} udp${t.other ? `, ${t.other} other` : ""}${extra})`;
  }
  if (s.programs.length > 0) parts.push(`by ${plural(s.programs.length, "program")}`);
  parts.push(`${plural(s.proxy.requests, "proxied request")}${s.proxy.refused > 0 ? `, ${s.proxy.refused} refused` : ""}`);
  if (s.degraded.length > 0) parts.push(`degraded: ${s.degraded.map((d) => clean(d.component)).join(", ")}`);
  return parts.join("; ");
}
