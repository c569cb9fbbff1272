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
import { dnsQuestion } from "../net/dns-query.ts";
import { decodePacket, type DecodedPacket } from "../net/ip-packet.ts";
import { GcPacer } from "../sys/gc-pacer.ts";
import { setRealtime } from "../sys/sched.ts";
import { ThreadPriority } from "./thread-priority.ts";
import { Attributor, SANDBOX_ADDRS } from "./attribution.ts";
import { Conntrack } from "./conntrack.ts";
import { drainQueries, type Query, type ResponderSocket } from "./dns-responder.ts";
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

/** A socket the thread polls: netlink ones are read into onChunk, the DNS responder's drain themselves. */
interface Reader {
  fd: number;
  early: Uint8Array[];
  onChunk: (chunk: Uint8Array) => void;
  drain?: (buf: Uint8Array) => void;
}

// Refused requests (a verdict for a packet the kernel no longer has) change nothing to report.
const ignore = () => {};

/** What a bypass_detect line says of a packet: its fields, and the name and type it asks for when it is DNS. */
function packetReport(d: DecodedPacket, uid: number | null, gid: number | null): { fields: PacketFields; dns: string | null; dnsType: string | null } {
  const q = d.dstPort === 53 && (d.proto === "tcp" || d.proto === "udp") ? dnsQuestion(d.l4Payload, d.proto === "tcp") : null;
  return {
    fields: { proto: d.proto, family: d.family, srcAddr: d.srcAddr, srcPort: d.srcPort, dstAddr: d.dstAddr, dstPort: d.dstPort, uid, gid, outIf: null },
    dns: q?.name ?? null,
    dnsType: q?.type ?? null,
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
      d.outIfindex = p.outIfindex;
      if (r.isProbe(d)) r.send({ t: "probe", proto: d.proto === "tcp" ? "tcp" : "udp" });
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
      if (d) d.outIfindex = p.outIfindex;
      const probing = d !== null && r.isProbe(d);
      // Attribution needs the socket, so the verdict waits for it; it is a reject either way,
      // and it is given whatever the lookup does: a held SYN with no verdict would hang CMD.
      let process: Process | null = null;
      try {
        if (d && !probing) process = r.attribute(d, true);
      } finally {
        p.verdict({ repeatWithMark: mark });
      }
      if (probing) r.send({ t: "probe", proto: d.proto === "tcp" ? "tcp" : "udp" });
      else if (d && process) r.report("nfqueue", d, p.uid, p.gid, process);
    },
    ignore,
    () => false,
  );
  return { fd, early: hold.early, onChunk: messageSplitter(packetDecoder(NFQUEUE_FORMAT, onPacket, stats), stats, ignore) };
}

/**
 * The DNS responder: each query is attributed while its sender waits for the answer (so the
 * socket still exists), its first destination is read back from conntrack, then it is answered
 * REFUSED (drainQueries sends the answer after this returns) and reported.
 */
function dnsReader(s: ResponderSocket, attributor: Attributor, conntrack: Conntrack | null, r: Reporting): Reader {
  // Lines at most as often as the fence logs the rest (--log-rate's default); every query is
  // still answered and counted.
  let tokens = DNS_BURST;
  let last = performance.now();
  const onQuery = (q: Query) => {
    const now = performance.now();
    tokens = Math.min(DNS_BURST, tokens + ((now - last) * DNS_RATE) / 1000);
    last = now;
    if (tokens < 1) {
      r.send({ t: "dns-unreported" });
      return;
    }
    tokens -= 1;
    const process = attributor.attributeLocal(q.family, q.srcAddr, q.srcPort);
    const first = conntrack?.originalDestination(q.family, { addr: s.addr, port: s.port }, { addr: q.srcAddr, port: q.srcPort }) ?? { error: "no conntrack socket" };
    // Without the entry (it cannot be missing while the redirect holds): the responder's own end.
    const dst = "error" in first ? { addr: s.addr, port: 53 } : first;
    r.send({
      t: "bypass",
      source: "dns",
      fields: { proto: "udp", family: q.family, srcAddr: q.srcAddr, srcPort: q.srcPort, dstAddr: dst.addr, dstPort: dst.port, uid: null, gid: null, outIf: null },
      dns: q.name,
      dnsType: q.type,
      process,
    });
  };
  return { fd: s.fd, early: [], onChunk: () => {}, drain: (buf) => drainQueries(s, buf, onQuery) };
}

const DNS_RATE = 100;
const DNS_BURST = 200;

function run(init: WatchThreadInit): void {
  const shared = new Int32Array(init.shared);
  let attributor: Attributor | null = null;
  let conntrack: Conntrack | null = null;
  const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
  try {
    // A sandbox's sockets send from its known addresses; a monitored namespace's are not known.
    attributor = new Attributor(init.nsPath, () => Atomics.load(shared, SHARED.cmdPid) || null, init.hold ? SANDBOX_ADDRS : null);
    if (init.dns.length > 0) {
      try {
        conntrack = new Conntrack(init.nsPath);
      } catch {
        // The lines then name the responder's own address as the destination.
      }
    }
    const r = reporting(attributor, shared);
    const dns = init.dns.map((s) => dnsReader(s, attributor!, conntrack, r));
    // The log first: its messages were queued before the datagrams that reached the responder.
    const readers: Reader[] = [logReader(init.log, r, stats), ...(init.hold ? [holdReader(init.hold, r, stats)] : []), ...dns];
    for (const s of readers) for (const chunk of s.early) s.onChunk(chunk);
    const priority = new ThreadPriority(setRealtime);
    readUntilWoken(
      readers.map(({ fd, onChunk, drain }) => {
        const timed = <A>(f: (a: A) => void) => (a: A) => {
          const t0 = performance.now();
          f(a);
          Atomics.store(shared, SHARED.enobufs, stats.enobufs);
          Atomics.store(shared, SHARED.heapKiB, heapSize() >>> 10);
          priority.account(performance.now() - t0);
        };
        return { fd, onChunk: timed(onChunk), ...(drain ? { drain: timed(drain) } : {}) };
      }),
      init.wakeFd,
      stats,
    );
  } catch (e) {
    postMessage({ t: "failed", message: (e as Error).message } satisfies FromWatchThread);
  } finally {
    Atomics.store(shared, SHARED.enobufs, stats.enobufs);
    // Its sock_diag socket lives in the sandbox namespace: closed here, before the namespace goes.
    attributor?.close();
    conntrack?.close();
    postMessage({ t: "stopped" } satisfies FromWatchThread);
  }
}

self.onmessage = (e: MessageEvent<WatchThreadInit>) => run(e.data);
