// The NFLOG reader thread (a Worker; nflog-thread.ts starts it): read -> decode -> attribute, then
// one message per bypass to the main thread, which emits it.
//
// Why a thread: NFLOG reports UDP, which is rejected at once (sendto fails with EPERM), so nothing
// holds the client while its owner is looked up. A python client that exits after the error keeps
// its socket 0.8-2.5 ms. The main thread's event loop, shared with the proxy and the output, began
// the lookup 0.3-0.8 ms after the send (4 ms when busy) and lost about one such client in ten.
// This thread waits in poll(), at real-time priority while it is cheap (see Urgency): at normal
// priority it still woke 3-4 ms late now and then, behind the very client it was to name.
import type { ProcessInfo } from "../events/schema.ts";
import { Attributor } from "./attribution.ts";
import { decodePacket, packetReport } from "./ip-packet.ts";
import { messageSplitter, packetDecoder, readUntilWoken, type ListenerStats } from "./netlink.ts";
import { NFLOG_FORMAT, nflogPacket } from "./nflog-socket.ts";
import { SHARED, type FromNflogThread, type NflogThreadInit } from "./nflog-thread.ts";
import { isProbe } from "./self-test.ts";
import { setRealtime } from "../sys/sched.ts";

/**
 * Real-time priority, but never for a thread that keeps a CPU busy: one that spends more than
 * BUSY_MS of a WINDOW_MS window handling packets (a flood) goes back to normal priority, and
 * returns to real time after a window under CALM_MS. So it can take at most about a fifth of one
 * CPU ahead of everything else.
 */
class Urgency {
  private static readonly WINDOW_MS = 100;
  private static readonly BUSY_MS = 20;
  private static readonly CALM_MS = 5;
  private windowStart = performance.now();
  private spent = 0;
  private realtime = setRealtime(true);
  /** Without CAP_SYS_NICE the thread runs at normal priority throughout. */
  private readonly allowed = this.realtime;

  account(ms: number): void {
    const now = performance.now();
    if (now - this.windowStart > Urgency.WINDOW_MS) {
      if (this.allowed && this.spent < Urgency.CALM_MS && !this.realtime) this.realtime = setRealtime(true);
      this.windowStart = now;
      this.spent = 0;
    }
    this.spent += ms;
    if (this.realtime && this.spent > Urgency.BUSY_MS) this.realtime = !setRealtime(false);
  }
}

declare const self: Worker;

function run(init: NflogThreadInit): void {
  const shared = new Int32Array(init.shared);
  const send = (m: FromNflogThread) => postMessage(m);
  let attributor: Attributor | null = null;
  try {
    attributor = new Attributor(init.nsPath, () => Atomics.load(shared, SHARED.cmdPid) || null);
    const who = attributor;
    const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
    const onMessage = packetDecoder(
      NFLOG_FORMAT,
      (attrs, hdr) => {
        const p = nflogPacket(attrs, hdr);
        if (p.prefix !== init.prefix) return;
        const d = decodePacket(p.payload);
        if (!d) return;
        if (Atomics.load(shared, SHARED.probing) && isProbe(d)) return send({ t: "probe", proto: d.proto });
        let process: Exclude<ProcessInfo, null>;
        try {
          process = who.attribute(d, false);
        } catch (e) {
          process = { resolved: false, why: `lookup failed: ${(e as Error).message}` };
        }
        send({ t: "bypass", ...packetReport(d, p.uid, p.gid), process });
      },
      stats,
    );
    // Refused requests are the only errors here, and this socket sends none after binding.
    const onChunk = messageSplitter(onMessage, stats, () => {});
    const publish = () => {
      Atomics.store(shared, SHARED.packets, stats.packets);
      Atomics.store(shared, SHARED.enobufs, stats.enobufs);
      Atomics.store(shared, SHARED.decodeErrors, stats.decodeErrors);
    };
    for (const chunk of init.early) onChunk(chunk);
    const urgency = new Urgency();
    readUntilWoken(
      init.fd,
      init.wakeFd,
      (chunk) => {
        const t0 = performance.now();
        onChunk(chunk);
        publish();
        urgency.account(performance.now() - t0);
      },
      stats,
    );
    publish();
  } catch (e) {
    send({ t: "failed", message: (e as Error).message });
  } finally {
    // Its sock_diag socket lives in the sandbox namespace: closed here, before the namespace goes.
    attributor?.close();
    send({ t: "stopped" });
  }
}

self.onmessage = (e: MessageEvent<NflogThreadInit>) => run(e.data);
