// bypass_summary and bypass_totals lines: every --summary-interval seconds, and once at the end,
// before the watch closes and the namespace goes (the rule counters live there). Each time, the
// fence is read back and checked against the one installed (src/fence/verify.ts): a change is a
// degraded line, bypass_detect lines stop saying "reject", the totals become null (the counters
// are no longer the installed fence's), and --fail-on-bypass fails the run.
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import { FenceCheck } from "../fence/verify.ts";
import type { Watch } from "../monitor/watch.ts";
import type { Backend, FenceStep } from "../plan/sandbox-plan.ts";
import { jitTiers } from "../sys/jit-tiers.ts";
import type { Setup } from "./setup.ts";

/** What the summaries learnt about the run, for its exit code. */
export interface Supervision {
  /** CMD tried to go around the proxy. */
  bypassed(): boolean;
  /** The fence was changed during the run (when first seen, RFC 3339), or null. */
  fenceChangedAt(): string | null;
}

const FIX = "do not let CMD keep CAP_NET_ADMIN over its namespace: run it with --user UID[:GID] (and without --keep-caps)";
const STILL =
  "only what is left of the rules: connections the fence no longer rejects can leave through the sandbox's own links unreported; bypass_detect lines say \"unfenced\" from here on, and bypass_totals are null";

/**
 * Reads the installed fence back (before CMD starts: the reference of every check) and starts the
 * periodic summaries. `fence` is null when no fence was installed (--allow-degraded).
 */
export async function startSummaries(s: Setup, watch: Watch, fence: { steps: readonly FenceStep[]; backend: Backend; nsPath: string } | null): Promise<Supervision> {
  let bypassed = false;
  const check = fence ? await FenceCheck.start(fence.nsPath, fence.backend, fence.steps) : null;
  if (check?.problem) s.degrade("fence", check.problem, "see proxywall doctor, and report this as a bug", "the fence as installed; changes to it during the run are still reported");
  const summarize = async (final: boolean): Promise<boolean> => {
    // The kernel's counters and the watch's last reports are read at once: neither waits on the other.
    const [f] = await Promise.all([check ? check.check() : null, final ? watch.drain() : null]);
    if (f?.news) {
      if (check!.changedAt !== null) watch.fenceChanged();
      s.degrade("fence", f.news, FIX, STILL);
    }
    if (watch.source === "off") return false;
    if (process.env.PROXYWALL_DEBUG) debugMemory(watch);
    for (const line of watch.summary.lines(s.id, final)) s.emit(line);
    const t = f?.totals ?? null;
    s.emit({ v: 1, event: "bypass_totals", ts: nowTs(), sandbox: s.id, tcp: t?.tcp ?? null, udp: t?.udp ?? null, other: t?.other ?? null, events: watch.summary.events, lost: watch.lost, final });
    return watch.summary.events > 0 || (t ? t.tcp + t.udp + t.other > 0 : false);
  };
  // One summary at a time: a slow read of the fence must not let the final one overtake a periodic one.
  let last: Promise<unknown> = Promise.resolve();
  const next = (final: boolean) => (last = last.then(() => summarize(final)));
  const interval = s.cfg.summaryInterval;
  const timer = interval > 0 ? setInterval(() => void next(false).catch((e) => diag.error(e as Error)), interval * 1000) : null;
  s.onTeardown("bypass summary", async () => {
    if (timer) clearInterval(timer);
    bypassed = (await next(true)) as boolean;
  });
  return { bypassed: () => bypassed, fenceChangedAt: () => check?.changedAt ?? null };
}

function debugMemory(watch: Watch): void {
  const m = process.memoryUsage();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  diag.debug(`memory: rss ${mb(m.rss)} MB, JS heap ${mb(m.heapUsed)} of ${mb(m.heapTotal)} MB, external ${mb(m.external)} MB, watch thread heap ${mb(watch.threadHeapBytes)} MB; JIT: ${jitTiers}`);
}
