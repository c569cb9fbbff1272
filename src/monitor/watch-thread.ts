// Starts and stops the watch thread (watch-worker.ts), which reads the sandbox's NFLOG and NFQUEUE
// sockets, attributes each packet, gives held packets their verdict, and posts each bypass back to
// the main thread, which emits it. The sockets are bound here, synchronously, so a failure to bind
// is an error of Watch.open(); the thread reads them (fds belong to the process).
import type { ProcessInfo, Source } from "../events/schema.ts";
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { closeAndRelease, fdLink } from "./netlink-socket.ts";
import { closeFd, wake } from "../sys/eventfd.ts";
import { makeWakeFd } from "./netlink-poll.ts";
import { bindNflog } from "./nflog-socket.ts";
import { bindNfqueue } from "./nfqueue-socket.ts";
import { bindResponder, type ResponderSocket } from "./dns-responder.ts";
import { workerPath } from "../sys/worker-path.ts";

/** Slots of the Int32Array both threads share. */
export const SHARED = { cmdPid: 0, probing: 1, enobufs: 2, heapKiB: 3, size: 4 } as const;

interface Bound {
  fd: number;
  early: Uint8Array[];
}

export interface WatchThreadInit {
  /** NFLOG: reports of rejected packets whose log prefix is `prefix`. */
  log: Bound & { prefix: string };
  /** NFQUEUE: held TCP SYNs, each answered with a repeat carrying `mark` once attributed. */
  hold: (Bound & { queue: number; mark: number }) | null;
  /** The DNS responder's sockets (none without the hold). */
  dns: ResponderSocket[];
  /** An eventfd: written once, it ends the reading (after what is queued has been read). */
  wakeFd: number;
  nsPath: string;
  shared: SharedArrayBuffer;
}

export type FromWatchThread =
  | { t: "probe"; proto: "tcp" | "udp" }
  | { t: "bypass"; source: Extract<Source, "nflog" | "nfqueue" | "dns">; fields: PacketFields; dns: string | null; dnsType: string | null; process: Exclude<ProcessInfo, null> }
  | { t: "dns-unreported" }
  | { t: "failed"; message: string }
  | { t: "stopped" };

export interface WatchThreadOptions {
  nsPath: string;
  log: { group: number; prefix: string };
  /** Null: report only (attaching to a namespace proxywall did not fence). */
  hold: { queue: number; mark: number; dnsPort: number } | null;
  onBypass: (b: Extract<FromWatchThread, { t: "bypass" }>) => void;
  /** A DNS query answered and counted, but beyond the rate of lines. */
  onDnsUnreported: () => void;
  onProbe: (proto: "tcp" | "udp") => void;
  /** The thread could not start or stopped reading: nothing more will be reported. */
  onFailure: (why: string) => void;
}

export interface WatchThread {
  /** Packet messages the kernel dropped because the thread fell behind (ENOBUFS). */
  readonly enobufs: number;
  /** The thread's JS heap in bytes, as of its last packet (PROXYWALL_DEBUG's memory line). */
  readonly heapBytes: number;
  /** Ancestor chains end at CMD. */
  setCmdPid(pid: number): void;
  /** While on, packets to the self-test's address are probes, not bypasses. */
  setProbing(on: boolean): void;
  /** Reads what is queued, then stops reading; resolves when every report has been delivered. */
  stop(): Promise<void>;
  /** stop(), then releases the sockets (no fd keeps the namespace alive). Idempotent. */
  close(): Promise<void>;
}

const STOP_TIMEOUT_MS = 2000;

const WORKER = workerPath("monitor/watch-worker.ts");

export function startWatchThread(o: WatchThreadOptions): WatchThread {
  const opened: number[] = [];
  let init: WatchThreadInit;
  try {
    const log = { ...bindNflog({ netns: o.nsPath, group: o.log.group }), prefix: o.log.prefix };
    opened.push(log.fd);
    const hold = o.hold ? { ...bindNfqueue({ netns: o.nsPath, queue: o.hold.queue }), queue: o.hold.queue, mark: o.hold.mark } : null;
    if (hold) opened.push(hold.fd);
    const dns = o.hold ? bindResponder(o.nsPath, o.hold.dnsPort) : [];
    opened.push(...dns.map((d) => d.fd));
    init = { log, hold, dns, wakeFd: makeWakeFd(), nsPath: o.nsPath, shared: new SharedArrayBuffer(4 * SHARED.size) };
  } catch (e) {
    for (const fd of opened) closeFd(fd);
    throw e;
  }
  const links = opened.map((fd) => ({ fd, link: fdLink(fd) }));
  const shared = new Int32Array(init.shared);
  let stoppedNow: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stoppedNow = resolve));
  const worker = new Worker(WORKER);
  worker.onmessage = (e: MessageEvent<FromWatchThread>) => {
    const m = e.data;
    if (m.t === "bypass") o.onBypass(m);
    else if (m.t === "probe") o.onProbe(m.proto);
    else if (m.t === "dns-unreported") o.onDnsUnreported();
    else if (m.t === "failed") o.onFailure(m.message);
    else stoppedNow();
  };
  worker.onerror = (e) => {
    o.onFailure(`the watch thread failed: ${e.message}`);
    stoppedNow();
  };
  worker.postMessage(init);

  let stopping: Promise<void> | null = null;
  let closing: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      wake(init.wakeFd);
      await Promise.race([stopped, Bun.sleep(STOP_TIMEOUT_MS)]);
      worker.terminate();
    })());
  return {
    get enobufs() {
      return Atomics.load(shared, SHARED.enobufs);
    },
    get heapBytes() {
      return Atomics.load(shared, SHARED.heapKiB) * 1024;
    },
    setCmdPid: (pid) => Atomics.store(shared, SHARED.cmdPid, pid),
    setProbing: (on) => Atomics.store(shared, SHARED.probing, on ? 1 : 0),
    stop,
    close: () =>
      (closing ??= stop().then(async () => {
        closeFd(init.wakeFd);
        // Packets still waiting in the queue for a verdict are dropped by the kernel here.
        for (const { fd, link } of links) {
          if (!(await closeAndRelease(fd, link))) o.onFailure("a netlink socket is still open after close");
        }
      })),
  };
}
