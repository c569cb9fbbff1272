// bypass_summary and bypass_totals lines: every --summary-interval seconds, and once at the end,
// before the watch closes and the namespace goes (the rule counters live there).
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { Watch } from "../monitor/watch.ts";
import type { RejectTotals } from "../monitor/rule-counters.ts";
import { jitTiers } from "../sys/jit-tiers.ts";
import type { Setup } from "./setup.ts";

/** Starts the periodic summaries; the returned function says whether CMD tried to go around the proxy. */
export function startSummaries(s: Setup, watch: Watch): () => boolean {
  let bypassed = false;
  const summarize = async (final: boolean): Promise<RejectTotals | null> => {
    if (watch.source === "off") return null;
    if (final) await watch.drain();
    if (process.env.PROXYWALL_DEBUG) debugMemory(watch);
    for (const line of watch.summary.lines(s.id, final)) s.emit(line);
    const t = await watch.totals();
    s.emit({ v: 1, event: "bypass_totals", ts: nowTs(), sandbox: s.id, tcp: t?.tcp ?? null, udp: t?.udp ?? null, other: t?.other ?? null, events: watch.summary.events, lost: watch.lost, final });
    return t;
  };
  const interval = s.cfg.summaryInterval;
  const timer = interval > 0 ? setInterval(() => void summarize(false), interval * 1000) : null;
  s.onTeardown("bypass summary", async () => {
    if (timer) clearInterval(timer);
    const t = await summarize(true);
    bypassed = watch.summary.events > 0 || (t ? t.tcp + t.udp + t.other > 0 : false);
  });
  return () => bypassed;
}

function debugMemory(watch: Watch): void {
  const m = process.memoryUsage();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  diag.debug(`memory: rss ${mb(m.rss)} MB, JS heap ${mb(m.heapUsed)} of ${mb(m.heapTotal)} MB, external ${mb(m.external)} MB, watch thread heap ${mb(watch.threadHeapBytes)} MB; JIT: ${jitTiers}`);
}
