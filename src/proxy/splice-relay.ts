// Hands a tunnel's two sockets over to the splice relay thread (splice-worker.ts) once the proxy
// has nothing left to decide about its bytes, so that they move in the kernel from then on.
//
// The hand-over is synchronous, so Bun's event loop never touches the sockets again: each socket
// gets a duplicate descriptor (the same socket), then the node:net socket is destroyed, which
// removes its descriptor from Bun's epoll and closes it, nothing more (no shutdown, no FIN: checked
// with strace) while the duplicate keeps the connection open. Bytes Bun had read but not delivered
// go to the thread first; a socket with bytes still waiting to be written is not handed over.
// Every descriptor the thread needs is made here first, so a failure (EMFILE) leaves the tunnel
// to the JS relay, whole.
//
// PROXYWALL_NO_SPLICE=1 keeps every tunnel on the JS relay (for measurements against it).
import type net from "node:net";
import { closeFd, makeEventFd, wake } from "../sys/eventfd.ts";
import { dupFd, epollCreate, makePipe } from "../sys/splice.ts";
import { workerPath } from "../sys/worker-path.ts";

/**
 * Pipe size, per direction. With 1 MiB a 256 MiB download took about 450 splice(2) calls in and
 * out, with the default 64 KiB about 4,500 (one receive skb each); 4 MiB made the thread chase
 * the socket at one skb per call. A full pipe holds at most this much beyond the socket buffers.
 */
const PIPE_BYTES = 1 << 20;

export type ToSpliceThread =
  | { t: "init"; ep: number; wakeFd: number }
  | {
      t: "add";
      id: number;
      client: number;
      upstream: number;
      pipeUp: [number, number];
      pipeDown: [number, number];
      pipeBytes: number;
      /** Bytes read by the JS relay and not yet written, for each side. */
      toUpstream: Uint8Array | null;
      toClient: Uint8Array | null;
      idleMs: number;
    }
  | { t: "cut"; id: number };

export type SpliceEnding =
  | { kind: "ok" }
  | { kind: "idle" }
  | { kind: "cut" }
  /** `harmless`: a reset after that side's FIN, which loses nothing (the JS relay's rule). */
  | { kind: "error"; side: "client" | "upstream"; op: "read" | "write"; errno: number; harmless: boolean }
  | { kind: "failed"; message: string };

/** How a spliced tunnel ended, and the bytes it moved after the hand-over. */
export interface SpliceEnd {
  t: "end";
  id: number;
  up: number;
  down: number;
  end: SpliceEnding;
}

type FromSpliceThread = SpliceEnd | { t: "ready" } | { t: "failed"; message: string };

export interface Spliced {
  /** Ends the tunnel now (proxy shutdown); its end is reported as "cut". */
  cut(): void;
}

interface Live {
  fds: number[];
  onEnd: (e: SpliceEnd) => void;
}

interface Thread {
  worker: Worker;
  wakeFd: number;
  ready: boolean;
  live: Map<number, Live>;
}

const WORKER = workerPath("proxy/splice-worker.ts");

let thread: Thread | null = null;
let nextId = 1;
let settled = false;
let readyNow: (ok: boolean) => void = () => {};
const ready = new Promise<boolean>((r) => {
  readyNow = (ok) => {
    settled = true;
    r(ok);
  };
});

/** Resolves true once tunnels can be spliced, false if they cannot (tests and benches wait for it). */
export const spliceReady = (): Promise<boolean> => ready;

/** True while the relay thread is starting: a tunnel that asks meanwhile can wait for spliceReady(). */
export const spliceStarting = (): boolean => thread !== null && !settled;

/**
 * Starts the relay thread, once per process, when the first tunnel is admitted: it is ready by the
 * time the tunnel is (its upstream connected, its ClientHello read), and a run that opens no
 * tunnel, as most short ones, does not pay for a thread (its start-up and 3-4 MB).
 */
export function prepareSplice(): void {
  if (thread) return;
  if (process.env.PROXYWALL_NO_SPLICE === "1") return readyNow(false);
  const ep = epollCreate();
  const wakeFd = makeEventFd();
  if (ep < 0 || wakeFd < 0) {
    for (const fd of [ep, wakeFd]) if (fd >= 0) closeFd(fd);
    return readyNow(false);
  }
  const worker = new Worker(WORKER);
  const t: Thread = { worker, wakeFd, ready: false, live: new Map() };
  thread = t;
  // Without relays it must not keep proxywall alive; with one it must (ref() below).
  worker.unref();
  worker.onmessage = (e: MessageEvent<FromSpliceThread>) => {
    const m = e.data;
    if (m.t === "ready") t.ready = true;
    else if (m.t === "failed") t.ready = false;
    if (m.t !== "end") readyNow(t.ready);
    else finished(t, m);
  };
  // A thread that fails to start leaves every tunnel to the JS relay; one that fails later ends
  // its tunnels here (it can no longer close their descriptors itself).
  worker.onerror = (e) => {
    t.ready = false;
    readyNow(false);
    for (const [id, l] of [...t.live]) {
      for (const fd of l.fds) closeFd(fd);
      finished(t, { t: "end", id, up: 0, down: 0, end: { kind: "failed", message: `the splice relay thread failed: ${e.message}` } });
    }
  };
  const init: ToSpliceThread = { t: "init", ep, wakeFd };
  worker.postMessage(init);
}

function finished(t: Thread, e: SpliceEnd): void {
  const l = t.live.get(e.id);
  if (!l) return;
  t.live.delete(e.id);
  if (t.live.size === 0) t.worker.unref();
  l.onEnd(e);
}

const fdOf = (s: net.Socket): number => {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : -1;
};

/** What `s` has read and not delivered (a paused socket keeps it), taken out of it. */
function undelivered(s: net.Socket): Uint8Array | null {
  const parts: Buffer[] = [];
  for (let b = s.read() as Buffer | null; b !== null; b = s.read() as Buffer | null) parts.push(b);
  return parts.length === 0 ? null : Buffer.concat(parts);
}

/** Descriptors for one relay (two pipes, two duplicates), or null with none left open. */
function descriptors(client: number, upstream: number): { pipeUp: [number, number]; pipeDown: [number, number]; c: number; u: number } | null {
  const made: number[] = [];
  const keep = (fd: number) => (fd >= 0 && made.push(fd), fd);
  const pipeUp = makePipe(PIPE_BYTES);
  if (Array.isArray(pipeUp)) made.push(...pipeUp);
  const pipeDown = makePipe(PIPE_BYTES);
  if (Array.isArray(pipeDown)) made.push(...pipeDown);
  const c = keep(dupFd(client));
  const u = keep(dupFd(upstream));
  if (Array.isArray(pipeUp) && Array.isArray(pipeDown) && c >= 0 && u >= 0) return { pipeUp, pipeDown, c, u };
  for (const fd of made) closeFd(fd);
  return null;
}

/**
 * Moves the tunnel between `client` and `upstream` to the relay thread, or returns null and
 * changes nothing (no thread, a socket ending or with unwritten bytes, no descriptors left).
 * After it, both node:net sockets are destroyed; `onEnd` is called once, from the event loop.
 */
export function spliceTunnel(client: net.Socket, upstream: net.Socket, idleMs: number, onEnd: (e: SpliceEnd) => void): Spliced | null {
  const t = thread;
  if (!t?.ready) return null;
  const [cfd, ufd] = [fdOf(client), fdOf(upstream)];
  if (cfd < 0 || ufd < 0) return null;
  for (const s of [client, upstream]) {
    if (s.destroyed || s.errored || s.readableEnded || s.writableEnded || s.writableLength > 0 || s.connecting) return null;
  }
  const fds = descriptors(cfd, ufd);
  if (!fds) return null;
  const taken = [client, upstream].map((s) => {
    s.removeAllListeners();
    s.on("error", () => {});
    s.pause();
    const rest = undelivered(s);
    s.destroy();
    return rest;
  });
  const id = nextId++;
  t.live.set(id, { fds: [fds.c, fds.u, ...fds.pipeUp, ...fds.pipeDown], onEnd });
  t.worker.ref();
  const add: ToSpliceThread = { t: "add", id, client: fds.c, upstream: fds.u, pipeUp: fds.pipeUp, pipeDown: fds.pipeDown, pipeBytes: PIPE_BYTES, toUpstream: taken[0] ?? null, toClient: taken[1] ?? null, idleMs };
  t.worker.postMessage(add);
  wake(t.wakeFd);
  return {
    cut() {
      if (!t.live.has(id)) return;
      const m: ToSpliceThread = { t: "cut", id };
      t.worker.postMessage(m);
      wake(t.wakeFd);
    },
  };
}
