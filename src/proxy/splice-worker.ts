// The splice relay thread (a Worker; splice-relay.ts starts it and hands tunnels over): each
// tunnel's bytes go socket -> pipe -> socket with splice(2), in the kernel, never through JS
// buffers, driven by an epoll of this thread's own. Why: on two cores the client, the destination
// and the proxy share the CPUs, and a JS relay's copies and per-chunk work cost a third to half of
// a tunnel's throughput (bench/policy.ts).
//
// The thread blocks in epoll_wait only while it relays something; a message from the main thread
// is announced by a write to the wake eventfd, and the thread then returns to its event loop to
// receive it. Counting both (owed) keeps a message that arrived before its wake-up from being
// waited for twice. The sockets are edge-triggered: each event moves its direction until the
// kernel says EAGAIN.
import {
  EPOLL_EVENT_SIZE, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP,
  epollAdd, epollWait, eventData, eventFlags, finPending, shutdownWrite, socketError, splice, writeFd,
} from "../sys/splice.ts";
import { EAGAIN, EINTR, errnoName } from "../sys/errno.ts";
import { closeFd, drainEventFd } from "../sys/eventfd.ts";
import { IdleClock } from "./idle-clock.ts";
import type { SpliceEnd, SpliceEnding, ToSpliceThread } from "./splice-relay.ts";

declare const self: Worker;

const WAKE_TAG = 0xffffffff;

/** One direction: `from`'s bytes into the pipe, the pipe into `to`. */
interface Dir {
  from: number;
  to: number;
  pr: number;
  pw: number;
  room: number;
  inPipe: number;
  /** `from` sent its FIN (read returned 0). */
  eof: boolean;
  /** ... and `to` was sent ours, after the last byte. */
  shut: boolean;
  bytes: number;
  /** Bytes the JS relay had read but not written yet: they go first. */
  carry: Uint8Array | null;
}

interface Relay {
  id: number;
  client: number;
  upstream: number;
  up: Dir;
  down: Dir;
  idle: IdleClock;
  nextLook: number;
}

let ep = -1;
let wakeFd = -1;
let owed = 0;
let running = false;
const relays = new Map<number, Relay>();
const events = new Uint8Array(64 * EPOLL_EVENT_SIZE);
const view = new DataView(events.buffer);

function end(r: Relay, e: SpliceEnding): void {
  if (!relays.delete(r.id)) return;
  // Closing removes them from the epoll too (no other descriptor holds these sockets).
  for (const fd of [r.client, r.upstream, r.up.pr, r.up.pw, r.down.pr, r.down.pw]) closeFd(fd);
  const m: SpliceEnd = { t: "end", id: r.id, up: r.up.bytes, down: r.down.bytes, end: e };
  self.postMessage(m);
}

/**
 * An error on one side; harmless as the JS relay judges it: nothing is lost by a reset after that
 * side's FIN, or by the client's reset once the destination's FIN has come. Events come in no
 * fixed order (and a tunnel handed over late has both sides' news waiting at once), so a FIN the
 * destination sent that this thread has not read yet counts: the JS relay, seeing events in the
 * order they came, would have read it first.
 */
function fail(r: Relay, fd: number, op: "read" | "write", err: number): false {
  const side = fd === r.client ? "client" : "upstream";
  if (side === "client" && !r.down.eof && r.down.inPipe === 0 && finPending(r.upstream)) r.down.eof = true;
  const harmless = side === "client" ? r.up.eof || r.down.eof : r.down.eof;
  end(r, { kind: "error", side, op, errno: err, harmless });
  return false;
}

/** Moves one direction until the kernel says wait; false once the relay has ended. */
function pump(r: Relay, d: Dir): boolean {
  for (;;) {
    let progress = false;
    if (d.carry) {
      const n = writeFd(d.to, d.carry);
      if (n < 0 && n !== -EAGAIN && n !== -EINTR) return fail(r, d.to, "write", -n);
      if (n > 0) {
        d.bytes += n;
        d.carry = n === d.carry.length ? null : d.carry.subarray(n);
        r.idle.moved = true;
      }
      if (d.carry) return true; // EPOLLOUT on `to` comes back here
    }
    if (!d.eof) {
      const n = splice(d.from, d.pw, d.room);
      if (n > 0) {
        d.inPipe += n;
        progress = true;
      } else if (n === 0) {
        d.eof = true;
        progress = true;
      } else if (n !== -EAGAIN && n !== -EINTR) return fail(r, d.from, "read", -n);
    }
    if (d.inPipe > 0) {
      const n = splice(d.pr, d.to, d.inPipe);
      if (n > 0) {
        d.inPipe -= n;
        d.bytes += n;
        progress = true;
      } else if (n < 0 && n !== -EAGAIN && n !== -EINTR) return fail(r, d.to, "write", -n);
    }
    if (d.eof && d.inPipe === 0 && !d.shut) {
      d.shut = true;
      const e = shutdownWrite(d.to);
      if (e < 0) return fail(r, d.to, "write", -e);
      const other = d === r.up ? r.down : r.up;
      if (other.shut) {
        end(r, { kind: "ok" });
        return false;
      }
    }
    if (!progress) return true;
    r.idle.moved = true;
  }
}

function onEvent(flags: number, tag: number): void {
  const r = relays.get(tag >>> 1);
  if (!r) return;
  const fd = tag & 1 ? r.upstream : r.client;
  const [readDir, writeDir] = fd === r.client ? [r.up, r.down] : [r.down, r.up];
  const bad = (flags & (EPOLLERR | EPOLLHUP)) !== 0;
  if ((flags & (EPOLLIN | EPOLLRDHUP) || bad) && !pump(r, readDir)) return;
  if ((flags & EPOLLOUT || bad) && !pump(r, writeDir)) return;
  if (flags & EPOLLERR) {
    // A reset the moves above did not meet (this side had nothing to read or write): the JS relay
    // saw it as an error event on the socket.
    const err = socketError(fd);
    if (err !== 0) fail(r, fd, "read", err);
  }
}

/** The idle clock of each relay, as the JS relay's (idle-clock.ts); the time of the next look. */
function look(now: number): number {
  let next = Infinity;
  for (const r of relays.values()) {
    if (now >= r.nextLook) {
      if (r.idle.look()) {
        end(r, { kind: "idle" });
        continue;
      }
      r.nextLook = now + r.idle.quarterMs;
    }
    next = Math.min(next, r.nextLook);
  }
  return next;
}

/** Relays until a message is owed or nothing is left to relay. */
function run(): void {
  let nextLook = look(performance.now());
  while (owed <= 0 && relays.size > 0) {
    const wait = Math.max(0, Math.ceil(nextLook - performance.now()));
    const n = epollWait(ep, events, Number.isFinite(wait) ? Math.min(wait, 2 ** 31 - 1) : -1);
    if (n < 0 && n !== -EINTR) throw new Error(`epoll_wait failed: ${errnoName(-n)}`);
    for (let i = 0; i < n; i++) {
      const tag = eventData(view, i);
      if (tag === WAKE_TAG) owed += drainEventFd(wakeFd);
      else onEvent(eventFlags(view, i), tag);
    }
    const now = performance.now();
    if (now >= nextLook) nextLook = look(now);
  }
}

function add(m: Extract<ToSpliceThread, { t: "add" }>): void {
  const dir = (from: number, to: number, pipe: [number, number], carry: Uint8Array | null): Dir => ({
    from, to, pr: pipe[0], pw: pipe[1], room: m.pipeBytes, inPipe: 0, eof: false, shut: false, bytes: 0, carry: carry && carry.length > 0 ? carry : null,
  });
  const r: Relay = {
    id: m.id,
    client: m.client,
    upstream: m.upstream,
    up: dir(m.client, m.upstream, m.pipeUp, m.toUpstream),
    down: dir(m.upstream, m.client, m.pipeDown, m.toClient),
    idle: new IdleClock(m.idleMs),
    nextLook: performance.now() + m.idleMs / 4,
  };
  relays.set(r.id, r);
  const events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  const e = Math.min(epollAdd(ep, r.client, events, r.id * 2), epollAdd(ep, r.upstream, events, r.id * 2 + 1));
  if (e < 0) return void end(r, { kind: "failed", message: `epoll_ctl failed: ${errnoName(-e)}` });
  // Whatever arrived before the hand-over raised no edge here: move it now.
  if (pump(r, r.up)) pump(r, r.down);
}

self.onmessage = (e: MessageEvent<ToSpliceThread>) => {
  const m = e.data;
  if (m.t === "init") {
    ep = m.ep;
    wakeFd = m.wakeFd;
    const err = epollAdd(ep, wakeFd, EPOLLIN, WAKE_TAG);
    self.postMessage(err < 0 ? { t: "failed", message: `epoll_ctl on the wake-up eventfd: ${errnoName(-err)}` } : { t: "ready" });
    return;
  }
  owed--;
  if (m.t === "add") add(m);
  else {
    const r = relays.get(m.id);
    if (r) end(r, { kind: "cut" });
  }
  if (running) return;
  running = true;
  try {
    run();
  } catch (err) {
    const message = `the splice relay thread failed: ${err instanceof Error ? err.message : String(err)}`;
    for (const r of [...relays.values()]) end(r, { kind: "failed", message });
    self.postMessage({ t: "failed", message });
  } finally {
    running = false;
  }
};
