// The watch thread (a Worker; watch-thread.ts starts it): NFLOG reports and NFQUEUE holds are read,
// decoded and attributed here, held packets get their verdict here, and each bypass goes to the
// main thread as one message, to be emitted there.
//
// Why a thread: NFLOG reports UDP, which is rejected at once (sendto fails with EPERM), so nothing
// holds the client while its owner is looked up. A python client that exits after the error keeps
// its socket 0.8-2.5 ms. The main thread's event loop, shared with the proxy and the output, began
// the lookup 0.3-0.8 ms after the send (4 ms when busy) and lost about one such client in ten.
// This thread waits in poll(), at real-time priority while it is cheap (thread-priority.ts). Held
// SYNs are here too, so no verdict waits for the proxy's work, and the proxy never waits for a
// lookup.
import { heapSize } from "bun:jsc";
import type { ProcessInfo } from "../events/schema.ts";
import { GcPacer } from "../sys/gc-pacer.ts";
import { setRealtime } from "../sys/sched.ts";
import { ThreadPriority } from "./thread-priority.ts";
import { Attributor } from "./attribution.ts";
import { decodePacket, packetReport, type DecodedPacket } from "./ip-packet.ts";
import { messageSplitter, packetDecoder, readUntilWoken, type ListenerStats } from "./netlink.ts";
import { NFLOG_FORMAT, nflogPacket } from "./nflog-socket.ts";
import { NFQUEUE_FORMAT, queuedPackets } from "./nfqueue-socket.ts";
import { isProbe } from "./self-test.ts";
import { SHARED, type FromWatchThread, type WatchThreadInit } from "./watch-thread.ts";

declare const self: Worker;

type Process = Exclude<ProcessInfo, null>;

function run(init: WatchThreadInit): void {
  const shared = new Int32Array(init.shared);
  const send = (m: FromWatchThread) => postMessage(m);
  let attributor: Attributor | null = null;
  const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
  try {
    attributor = new Attributor(init.nsPath, () => Atomics.load(shared, SHARED.cmdPid) || null);
    const who = attributor;
    const gc = new GcPacer();
    const probe = (d: DecodedPacket) => Atomics.load(shared, SHARED.probing) !== 0 && isProbe(d);
    const attribute = (d: DecodedPacket, held: boolean): Process => {
      try {
        return who.attribute(d, held);
      } catch (e) {
        return { resolved: false, why: `lookup failed: ${(e as Error).message}` };
      }
    };
    const report = (source: "nflog" | "nfqueue", d: DecodedPacket, uid: number | null, gid: number | null, process: Process) => {
      send({ t: "bypass", source, ...packetReport(d, uid, gid), process });
      gc.tick();
    };
    // Refused requests (a verdict for a packet the kernel no longer has) change nothing to report.
    const ignore = () => {};

    const { prefix } = init.log;
    const onLogged = packetDecoder(
      NFLOG_FORMAT,
      (attrs, hdr) => {
        const p = nflogPacket(attrs, hdr);
        if (p.prefix !== prefix) return;
        const d = decodePacket(p.payload);
        if (!d) return;
        if (probe(d)) send({ t: "probe", proto: d.proto });
        else report("nflog", d, p.uid, p.gid, attribute(d, false));
      },
      stats,
    );
    const sockets: { fd: number; early: Uint8Array[]; onChunk: (chunk: Uint8Array) => void }[] = [
      { fd: init.log.fd, early: init.log.early, onChunk: messageSplitter(onLogged, stats, ignore) },
    ];
    if (init.hold) {
      const { fd, queue, mark } = init.hold;
      const onPacket = queuedPackets(
        fd,
        queue,
        (p) => {
          const d = decodePacket(p.payload);
          const probing = d !== null && probe(d);
          // Attribution needs the socket, so the verdict waits for it; it is a reject either way,
          // and it is given whatever the lookup does: a held SYN with no verdict would hang CMD.
          let process: Process | null = null;
          try {
            if (d && !probing) process = attribute(d, true);
          } finally {
            p.verdict({ repeatWithMark: mark });
          }
          if (probing) send({ t: "probe", proto: d.proto });
          else if (d && process) report("nfqueue", d, p.uid, p.gid, process);
        },
        ignore,
        () => false,
      );
      sockets.push({ fd, early: init.hold.early, onChunk: messageSplitter(packetDecoder(NFQUEUE_FORMAT, onPacket, stats), stats, ignore) });
    }
    for (const s of sockets) for (const chunk of s.early) s.onChunk(chunk);
    const priority = new ThreadPriority(setRealtime);
    readUntilWoken(
      sockets.map(({ fd, onChunk }) => ({
        fd,
        onChunk: (chunk: Uint8Array) => {
          const t0 = performance.now();
          onChunk(chunk);
          Atomics.store(shared, SHARED.enobufs, stats.enobufs);
          Atomics.store(shared, SHARED.heapKiB, heapSize() >>> 10);
          priority.account(performance.now() - t0);
        },
      })),
      init.wakeFd,
      stats,
    );
  } catch (e) {
    send({ t: "failed", message: (e as Error).message });
  } finally {
    Atomics.store(shared, SHARED.enobufs, stats.enobufs);
    // Its sock_diag socket lives in the sandbox namespace: closed here, before the namespace goes.
    attributor?.close();
    send({ t: "stopped" });
  }
}

self.onmessage = (e: MessageEvent<WatchThreadInit>) => run(e.data);
