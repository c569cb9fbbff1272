// Watching a sandbox for bypass attempts: source -> decode -> attribute -> event -> emit.
//
// Sources, best first: NFQUEUE holds each new TCP SYN (so its socket still exists while its owner
// is looked up) and NFLOG reports UDP and the TCP beyond the hold's rate limit (both per
// namespace, need only CAP_NET_ADMIN; both are read, attributed and answered on a thread of their
// own, see watch-worker.ts); /dev/kmsg and `dmesg --follow-new` read printk LOG lines, which exist
// only where the kernel writes other namespaces' packet logs.
import { bypassEvent } from "../events/bypass-event.ts";
import type { BypassDetect, EventLine, ProcessInfo, Source } from "../events/schema.ts";
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { exactPrefix } from "../kernel-log/log-prefix.ts";
import type { HoldQueue } from "../plan/ruleset.ts";
import type { Backend } from "../plan/sandbox-plan.ts";
import { Attributor } from "./attribution.ts";
import { BypassSummarizer } from "./bypass-summary.ts";
import { kernelLogReachable, kmsgUsable, openDmesg, openKmsg, recordFields, type LineSource } from "./kmsg-source.ts";
import { readRejectTotals, type RejectTotals } from "./rule-counters.ts";
import { GcPacer } from "../sys/gc-pacer.ts";
import { closeProbeFds, isProbe, PROBE_ADDR, PROBE_PORT, sendProbes } from "./self-test.ts";
import { startWatchThread, type WatchThread } from "./watch-thread.ts";

export type MonitorChoice = "auto" | "nflog" | "kmsg" | "dmesg" | "off";
export type MonitorSource = "nflog" | "kmsg" | "dmesg" | "off";

export interface WatchOptions {
  sandbox: string;
  nsPath: string;
  /** The printk/NFLOG prefix the sandbox's log rules carry. */
  prefix: string;
  nflogGroup: number;
  /** Hold TCP SYNs in this queue for attribution; null to only log (attaching to a namespace). */
  hold: HoldQueue | null;
  /** "reject" in a sandbox; "observe" where proxywall only watches a namespace it did not fence. */
  action: BypassDetect["action"];
  proxy: { addrs: readonly string[]; port: number };
  emit: (e: EventLine) => void;
  degrade: (component: string, missing: string, fix: string, still: string) => void;
}

const STILL = "every direct TCP/UDP connection is still rejected; only the reports are missing";

export class Watch {
  /** NFLOG and NFQUEUE, on a thread of their own. */
  private thread: WatchThread | null = null;
  private lines: LineSource | null = null;
  /** For kernel-log lines, read on this thread; made when first needed. */
  private attributor: Attributor | null = null;
  readonly summary = new BypassSummarizer();
  private probe: { tcp: boolean; udp: boolean; wake: (() => void) | null } | null = null;
  private baseline: RejectTotals | null = null;
  private backend: Backend | null = null;
  private closed = false;
  private readonly gc = new GcPacer();
  private cmdPid: number | null = null;
  /** The fence was seen changed: attempts are no longer known to be rejected. */
  private unfenced = false;
  /** DNS queries the responder answered: the fence's counters never see them (they are redirected, not rejected). */
  private dnsQueries = 0;
  source: MonitorSource = "off";

  private constructor(private readonly o: WatchOptions) {}

  /** The fence is no longer the one installed: bypass_detect lines say "unfenced", not "reject". */
  fenceChanged(): void {
    this.unfenced = true;
  }

  /** Ancestor chains end at CMD. */
  cmdStarted(pid: number): void {
    this.cmdPid = pid;
    this.thread?.setCmdPid(pid);
  }

  /**
   * Opens the best source that can work, before the fence is installed (the fence's log rules
   * depend on which it is). Every source that was wanted but cannot work is a degraded line.
   */
  static open(choice: MonitorChoice, o: WatchOptions): Watch {
    const w = new Watch(o);
    if (choice === "off") return w;
    if (choice === "auto" || choice === "nflog") {
      try {
        w.openNetlink();
        w.source = "nflog";
        return w;
      } catch (e) {
        o.degrade(
          "monitor-nflog",
          `NFLOG/NFQUEUE cannot be opened in the sandbox namespace: ${(e as Error).message}`,
          "run proxywall with CAP_NET_ADMIN over the sandbox namespace, on a kernel with nfnetlink_log and nfnetlink_queue",
          choice === "auto" ? `${STILL}; trying the kernel log next` : STILL,
        );
        if (choice === "nflog") return w;
      }
    }
    // The kernel log: /dev/kmsg, and `dmesg --follow-new` as the last resort.
    const reach = kernelLogReachable();
    const kmsg = reach.ok ? kmsgUsable() : reach;
    let kind: "kmsg" | "dmesg" = choice === "dmesg" ? "dmesg" : "kmsg";
    if (choice === "auto") {
      if (!reach.ok) {
        o.degrade("monitor", `nothing can watch for bypass attempts: ${reach.why}`, "give proxywall CAP_NET_ADMIN (for NFLOG), or on a host set net.netfilter.nf_log_all_netns=1 and allow /dev/kmsg", STILL);
        return w;
      }
      if (!kmsg.ok) kind = "dmesg";
    } else if (!(kind === "kmsg" ? kmsg : reach).ok) {
      const why = (kind === "kmsg" ? kmsg : reach).why;
      o.degrade(`monitor-${choice}`, `--monitor ${choice} was asked for, but ${why}`, "use --monitor nflog (the default where it works)", `${STILL}; the self-test below tells whether any line arrives`);
    }
    const onText = recordFields(exactPrefix(o.prefix), (fields, logTime) => w.logged(fields, logTime, kind));
    try {
      w.lines = kind === "dmesg" ? openDmesg(onText, (why) => o.degrade("monitor-dmesg", why, "use --monitor nflog", STILL)) : openKmsg(onText);
      w.source = kind;
    } catch (e) {
      o.degrade(`monitor-${kind}`, `cannot read the kernel log: ${(e as Error).message}`, "use --monitor nflog", STILL);
    }
    return w;
  }

  private openNetlink(): void {
    const o = this.o;
    this.thread = startWatchThread({
      nsPath: o.nsPath,
      log: { group: o.nflogGroup, prefix: o.prefix },
      hold: o.hold ? { queue: o.hold.num, mark: o.hold.mark, dnsPort: o.hold.dnsPort } : null,
      onBypass: (b) => {
        if (b.source === "dns") this.dnsQueries++;
        this.emitPacket(b.fields, b.dns, b.source, b.process, null, b.dnsType);
      },
      onDnsUnreported: () => this.dnsQueries++,
      onProbe: (proto) => this.probed(proto),
      onFailure: (why) => o.degrade("monitor-nflog", `the NFLOG/NFQUEUE reader stopped: ${why}`, "report this as a bug", STILL),
    });
  }

  /** The log rules the fence must carry for this source. */
  get logKind(): "nflog" | "kmsg" | "none" {
    return this.source === "nflog" ? "nflog" : this.source === "off" ? "none" : "kmsg";
  }

  /** Log rules are in place (attaching: no fence, so no reject counters to read). */
  logRulesInstalled(features: { log: boolean }): void {
    this.fenceInstalled(null, { queue: false, log: features.log });
  }

  /** After the fence is in: stop watching when its rules feed no source (no log rules, no hold). */
  fenceInstalled(backend: Backend | null, features: { queue: boolean; log: boolean }): void {
    this.backend = backend;
    // A socket the rules do not feed stays open but idle until close().
    if (!features.log && !(features.queue && this.thread)) {
      void this.thread?.close().finally(() => (this.thread = null));
      void this.lines?.close().finally(() => (this.lines = null));
      this.source = "off";
    }
  }

  private probed(proto: "tcp" | "udp"): void {
    if (!this.probe) return;
    this.probe[proto] = true;
    if (this.probe.tcp && this.probe.udp) this.probe.wake?.();
  }

  /**
   * A kernel-log line: a probe of the self-test, or a bypass attributed by lookup here (the line
   * carries no payload, so no DNS name), as the watch thread does for NFLOG.
   */
  private logged(fields: PacketFields, logTime: string | null, source: "kmsg" | "dmesg"): void {
    if (this.probe && isProbe(fields)) {
      this.probed(fields.proto === "tcp" ? "tcp" : "udp");
      return;
    }
    this.attributor ??= new Attributor(this.o.nsPath, () => this.cmdPid);
    this.emitPacket(fields, null, source, this.attributor.attribute(fields, false), logTime);
  }

  /** The one place a bypass_detect line is built, from a packet already attributed. */
  private emitPacket(fields: PacketFields, dns: string | null, source: Source, process: Exclude<ProcessInfo, null>, logTime: string | null = null, dnsType: string | null = null): void {
    const event = bypassEvent({ sandbox: this.o.sandbox, source, proxy: this.o.proxy }, fields, logTime, process);
    this.deliver({ ...event, process, dns_query: dns, dns_type: dnsType, action: this.unfenced && this.o.action === "reject" ? "unfenced" : this.o.action });
  }

  private deliver(e: BypassDetect): void {
    this.summary.add(e);
    this.o.emit(e);
    this.gc.tick();
  }

  /**
   * Makes one TCP and one UDP attempt from inside the sandbox to a reserved address and waits
   * for both to be seen. True when the monitor demonstrably works.
   */
  async selfTest(timeoutMs = 2000): Promise<{ ok: boolean; why: string }> {
    if (this.source === "off") return { ok: false, why: "no monitor" };
    this.probe = { tcp: false, udp: false, wake: null };
    this.thread?.setProbing(true);
    const seen = new Promise<void>((resolve) => (this.probe!.wake = resolve));
    const t0 = performance.now();
    const sent = sendProbes(this.o.nsPath);
    let both = false;
    try {
      if (sent.problems.length > 0) return { ok: false, why: sent.problems.join("; ") };
      await Promise.race([seen, Bun.sleep(timeoutMs)]);
      const p = this.probe;
      both = p.tcp && p.udp;
      if (both) return { ok: true, why: "" };
      const missing = [p.tcp ? null : "TCP", p.udp ? null : "UDP"].filter(Boolean).join(" and ");
      return { ok: false, why: `the ${missing} probe to ${PROBE_ADDR}:${PROBE_PORT} was rejected but not reported by ${this.source} within ${timeoutMs} ms` };
    } finally {
      closeProbeFds(sent.fds);
      this.probe = null;
      this.thread?.setProbing(false);
      // Counters from here on are CMD's: the probes are not its bypasses. Both seen well within
      // TCP's first retransmit (1 s) means one packet each; otherwise the counters are asked.
      if (both && performance.now() - t0 < 900) this.baseline = { tcp: 1, udp: 1, other: 0 };
      else if (this.backend) this.baseline = await readRejectTotals(this.o.nsPath, this.backend);
    }
  }

  /** Lets reports of the last attempts arrive before a final summary is written. */
  async drain(): Promise<void> {
    if (this.lines) await this.lines.drain();
    // The thread reads what is queued and delivers it before it stops.
    await this.thread?.stop();
  }

  /** Rejected packets since CMD started, from the rule counters; null when unreadable. */
  async totals(): Promise<RejectTotals | null> {
    if (!this.backend) return null;
    const now = await readRejectTotals(this.o.nsPath, this.backend);
    if (!now) return null;
    const b = this.baseline ?? { tcp: 0, udp: 0, other: 0 };
    // DNS over UDP is answered by the responder, not rejected: it counts what the counters cannot.
    return { tcp: now.tcp - b.tcp, udp: now.udp - b.udp + this.dnsQueries, other: now.other - b.other };
  }

  /** The watch thread's JS heap in bytes (0 without one). */
  get threadHeapBytes(): number {
    return this.thread?.heapBytes ?? 0;
  }

  /** DNS queries the responder answered REFUSED (the fence's counters do not see them: they are redirected, not rejected). */
  get dnsAnswered(): number {
    return this.dnsQueries;
  }

  /** Packet messages the kernel dropped because proxywall fell behind. */
  get lost(): number {
    return (this.thread?.enobufs ?? 0) + (this.lines?.stats.lost ?? 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.thread?.close(), this.lines?.close()]);
    this.attributor?.close();
  }
}
