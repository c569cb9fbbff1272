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
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { dnsQueryName } from "../net/dns-query.ts";
import { decodePacket, type DecodedPacket } from "../net/ip-packet.ts";
import { GcPacer } from "../sys/gc-pacer.ts";
import { setRealtime } from "../sys/sched.ts";
import { ThreadPriority } from "./thread-priority.ts";
import { Attributor } from "./attribution.ts";
import { messageSplitter, packetDecoder, type ListenerStats } from "./netlink-codec.ts";
import { readUntilWoken } from "./netlink-poll.ts";
import { NFLOG_FORMAT, nflogPacket } from "./nflog-socket.ts";
import { NFQUEUE_FORMAT, queuedPackets } from "./nfqueue-socket.ts";
import { isProbe } from "./self-test.ts";
import { SHARED, type FromWatchThread, type WatchThreadInit } from "./watch-thread.ts";

declare const self: Worker;

type Process = Exclude<ProcessInfo, null>;

/** What each packet handler needs: probe or bypass, the lookup, and the way to the main thread. */
interface Reporting {
  isProbe(d: DecodedPacket): boolean;
  attribute(d: DecodedPacket, held: boolean): Process;
  send(m: FromWatchThread): void;
  report(source: "nflog" | "nfqueue", d: DecodedPacket, uid: number | null, gid: number | null, process: Process): void;
}

/** A socket to read, with the chunks read while it was configured. */
interface Reader {
  fd: number;
  early: Uint8Array[];
  onChunk: (chunk: Uint8Array) => void;
}

// Refused requests (a verdict for a packet the kernel no longer has) change nothing to report.
const ignore = () => {};

/** What a bypass_detect line says of a packet: its fields, and the name it asks for when it is DNS. */
function packetReport(d: DecodedPacket, uid: number | null, gid: number | null): { fields: PacketFields; dns: string | null } {
  return {
    fields: { proto: d.proto, family: d.family, srcAddr: d.srcAddr, srcPort: d.srcPort, dstAddr: d.dstAddr, dstPort: d.dstPort, uid, gid, outIf: null },
    dns: d.dstPort === 53 ? dnsQueryName(d.l4Payload, d.proto === "tcp") : null,
  };
}

function reporting(attributor: Attributor, shared: Int32Array): Reporting {
  const gc = new GcPacer();
  const send = (m: FromWatchThread) => postMessage(m);
  return {
    isProbe: (d) => Atomics.load(shared, SHARED.probing) !== 0 && isProbe(d),
    attribute(d, held) {
      try {
        return attributor.attribute(d, held);
      } catch (e) {
        return { resolved: false, why: `lookup failed: ${(e as Error).message}` };
      }
    },
    send,
    report(source, d, uid, gid, process) {
      send({ t: "bypass", source, ...packetReport(d, uid, gid), process });
      gc.tick();
    },
  };
}

/** NFLOG: packets with the sandbox's prefix, attributed by a lookup made at once. */
function logReader(log: WatchThreadInit["log"], r: Reporting, stats: ListenerStats): Reader {
  const onLogged = packetDecoder(
    NFLOG_FORMAT,
    (attrs, hdr) => {
      const p = nflogPacket(attrs, hdr);
      if (p.prefix !== log.prefix) return;
      const d = decodePacket(p.payload);
      if (!d) return;
      if (r.isProbe(d)) r.send({ t: "probe", proto: d.proto });
      else r.report("nflog", d, p.uid, p.gid, r.attribute(d, false));
    },
    stats,
  );
  return { fd: log.fd, early: log.early, onChunk: messageSplitter(onLogged, stats, ignore) };
}

/** NFQUEUE: held SYNs, attributed while held, then answered with a repeat carrying the mark. */
function holdReader(hold: NonNullable<WatchThreadInit["hold"]>, r: Reporting, stats: ListenerStats): Reader {
  const { fd, queue, mark } = hold;
  const onPacket = queuedPackets(
    fd,
    queue,
    (p) => {
      const d = decodePacket(p.payload);
      const probing = d !== null && r.isProbe(d);
      // Attribution needs the socket, so the verdict waits for it; it is a reject either way,
      // and it is given whatever the lookup does: a held SYN with no verdict would hang CMD.
      let process: Process | null = null;
      try {
        if (d && !probing) process = r.attribute(d, true);
      } finally {
        p.verdict({ repeatWithMark: mark });
      }
      if (probing) r.send({ t: "probe", proto: d.proto });
      else if (d && process) r.report("nfqueue", d, p.uid, p.gid, process);
    },
    ignore,
    () => false,
  );
  return { fd, early: hold.early, onChunk: messageSplitter(packetDecoder(NFQUEUE_FORMAT, onPacket, stats), stats, ignore) };
}

function run(init: WatchThreadInit): void {
  const shared = new Int32Array(init.shared);
  let attributor: Attributor | null = null;
  const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
  try {
    attributor = new Attributor(init.nsPath, () => Atomics.load(shared, SHARED.cmdPid) || null);
    const r = reporting(attributor, shared);
    const readers = [logReader(init.log, r, stats), ...(init.hold ? [holdReader(init.hold, r, stats)] : [])];
    for (const s of readers) for (const chunk of s.early) s.onChunk(chunk);
    const priority = new ThreadPriority(setRealtime);
    readUntilWoken(
      readers.map(({ fd, onChunk }) => ({
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
    postMessage({ t: "failed", message: (e as Error).message } satisfies FromWatchThread);
  } finally {
    Atomics.store(shared, SHARED.enobufs, stats.enobufs);
    // Its sock_diag socket lives in the sandbox namespace: closed here, before the namespace goes.
    attributor?.close();
    postMessage({ t: "stopped" } satisfies FromWatchThread);
  }
}

self.onmessage = (e: MessageEvent<WatchThreadInit>) => run(e.data);
