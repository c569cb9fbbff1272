// Starts and stops the NFLOG reader thread (nflog-worker.ts): the socket is bound here,
// synchronously, so a failure to bind is an error of Watch.open() as before; the thread reads it,
// decodes, attributes, and posts each bypass back to this (the main) thread.
import type { ProcessInfo } from "../events/schema.ts";
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { closeAndRelease, closeFd, fdLink, makeWakeFd, wakeUp } from "./netlink.ts";
import { bindNflog, type NflogStats } from "./nflog-socket.ts";

/** Slots of the Int32Array both threads share. */
export const SHARED = { cmdPid: 0, probing: 1, packets: 2, enobufs: 3, decodeErrors: 4, size: 5 } as const;

export interface NflogThreadInit {
  /** The bound NFLOG socket: fds belong to the process, so the thread reads what this one bound. */
  fd: number;
  /** An eventfd: written once, it ends the reading (after what is queued has been read). */
  wakeFd: number;
  early: Uint8Array[];
  nsPath: string;
  prefix: string;
  shared: SharedArrayBuffer;
}

export type FromNflogThread =
  | { t: "probe"; proto: "tcp" | "udp" }
  | { t: "bypass"; fields: PacketFields; dns: string | null; process: Exclude<ProcessInfo, null> }
  | { t: "failed"; message: string }
  | { t: "stopped" };

export interface NflogThreadOptions {
  nsPath: string;
  group: number;
  /** Only packets whose log prefix is exactly this are reported. */
  prefix: string;
  onBypass: (b: Extract<FromNflogThread, { t: "bypass" }>) => void;
  onProbe: (proto: "tcp" | "udp") => void;
  /** The thread could not start or stopped reading: nothing more will be reported. */
  onFailure: (why: string) => void;
}

export interface NflogThread {
  readonly stats: NflogStats;
  /** Ancestor chains end at CMD. */
  setCmdPid(pid: number): void;
  /** While on, packets to the self-test's address are probes, not bypasses. */
  setProbing(on: boolean): void;
  /** Reads what is queued, then stops reading; resolves when every report has been delivered. */
  stop(): Promise<void>;
  /** stop(), then releases the socket (no fd keeps the namespace alive). Idempotent. */
  close(): Promise<void>;
}

const STOP_TIMEOUT_MS = 2000;

/**
 * From source, the file next to this one. In the compiled binary every build entrypoint sits under
 * the bundle's root (src/) and this code in a chunk at that root, where a Worker path resolves
 * against the root, not against this chunk (measured: the URL form fails there).
 */
const WORKER = import.meta.url.startsWith("file:///$bunfs/") ? "./monitor/nflog-worker.ts" : new URL("./nflog-worker.ts", import.meta.url).href;

export function startNflogThread(o: NflogThreadOptions): NflogThread {
  const { fd, early } = bindNflog({ netns: o.nsPath, group: o.group });
  let wakeFd: number;
  try {
    wakeFd = makeWakeFd();
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  const link = fdLink(fd);
  const shared = new Int32Array(new SharedArrayBuffer(4 * SHARED.size));
  let stoppedNow: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stoppedNow = resolve));
  const worker = new Worker(WORKER);
  worker.onmessage = (e: MessageEvent<FromNflogThread>) => {
    const m = e.data;
    if (m.t === "bypass") o.onBypass(m);
    else if (m.t === "probe") o.onProbe(m.proto);
    else if (m.t === "failed") o.onFailure(m.message);
    else stoppedNow();
  };
  worker.onerror = (e) => {
    o.onFailure(`the NFLOG thread failed: ${e.message}`);
    stoppedNow();
  };
  const init: NflogThreadInit = { fd, wakeFd, early, nsPath: o.nsPath, prefix: o.prefix, shared: shared.buffer as SharedArrayBuffer };
  worker.postMessage(init);

  let stopping: Promise<void> | null = null;
  let closing: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      wakeUp(wakeFd);
      await Promise.race([stopped, Bun.sleep(STOP_TIMEOUT_MS)]);
      worker.terminate();
    })());
  return {
    stats: {
      get packets() {
        return Atomics.load(shared, SHARED.packets);
      },
      get enobufs() {
        return Atomics.load(shared, SHARED.enobufs);
      },
      get decodeErrors() {
        return Atomics.load(shared, SHARED.decodeErrors);
      },
    },
    setCmdPid: (pid) => Atomics.store(shared, SHARED.cmdPid, pid),
    setProbing: (on) => Atomics.store(shared, SHARED.probing, on ? 1 : 0),
    stop,
    close: () =>
      (closing ??= stop().then(async () => {
        closeFd(wakeFd);
        if (!(await closeAndRelease(fd, link))) o.onFailure("the NFLOG socket is still open after close");
      })),
  };
}
