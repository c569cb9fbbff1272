// Reading a netlink socket on the event loop: `Bun.file(fd).stream()` (Bun polls the fd with
// epoll), restarted on the same fd after each read error. The watch thread reads with poll(2)
// instead (netlink-poll.ts), which wakes within about 0.15 ms of a packet where the event loop
// takes 0.3-0.8 ms, more when busy; this reader serves `openNflog`/`openNfqueue` (doctor, tests).
// Bun reads from its own close-on-exec dup of the fd and closes that dup a tick or more after the
// reader is cancelled: close() waits for it (closeAndRelease).
import { ENOBUFS } from "../sys/errno.ts";
import { messageSplitter, packetDecoder, type ListenerStats, type PacketFormat, type RawMessage } from "./netlink-codec.ts";
import { closeAndRelease, fdLink } from "./netlink-socket.ts";

/** Read errors in a row (each within a second of the last) before the reader backs off, and gives up. */
const BACK_OFF_AFTER = 5;
const GIVE_UP_AFTER = 20;

/** The errno of a failed stream read, and whether it is ENOBUFS (the kernel dropped messages). */
function readErrno(err: unknown): { no: number | null; enobufs: boolean } {
  const { code, errno: no } = err as { code?: string; errno?: number };
  return { no: typeof no === "number" ? Math.abs(no) : null, enobufs: code === "ENOBUFS" || no === ENOBUFS || no === -ENOBUFS };
}

/**
 * Reads `fd` on the event loop and hands each chunk to `onChunk`. A read error (ENOBUFS when the
 * kernel dropped messages because we fell behind) ends a Bun stream, so the stream is restarted
 * on the same fd; ENOBUFS is counted, other errors reported. `stop()` cancels the current stream;
 * the caller then closes the fd with closeAndRelease().
 */
export function startReader(
  fd: number,
  onChunk: (chunk: Uint8Array) => void,
  onReadError: (e: Error, errno: number | null) => void,
  stats: { enobufs: number },
): { stop(): Promise<void> } {
  let stopped = false;
  let current: { cancel(): Promise<void> } | null = null;
  let restarts = 0;
  let lastRestart = 0;

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const reader = Bun.file(fd).stream().getReader();
      current = reader;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || stopped) break;
          if (value && value.length) onChunk(value);
        }
        if (stopped) return;
        // A socket does not end; an end means the fd went away under us.
        onReadError(new Error("netlink socket stream ended"), null);
        return;
      } catch (err) {
        if (stopped) return;
        const { no, enobufs } = readErrno(err);
        if (enobufs) stats.enobufs++;
        else onReadError(err instanceof Error ? err : new Error(String(err)), no);
        // Restart on the same fd; a persistent non-ENOBUFS failure would spin, so back off.
        const now = performance.now();
        restarts = now - lastRestart < 1000 ? restarts + 1 : 0;
        lastRestart = now;
        if (!enobufs && restarts > GIVE_UP_AFTER) {
          onReadError(new Error("netlink socket keeps failing; reader stopped"), null);
          return;
        }
        if (restarts > BACK_OFF_AFTER) await Bun.sleep(Math.min(100 * restarts, 1000));
      }
    }
  };
  const done = loop();

  return {
    async stop() {
      stopped = true;
      try {
        await current?.cancel();
      } catch {}
      await done.catch(() => {});
    },
  };
}

/** Delivers the messages of `early` chunks (read while configuring), then of every chunk read from `fd`, to `onMessage`. */
export function startListener(
  fd: number,
  early: Uint8Array[],
  onMessage: (m: RawMessage) => void,
  stats: ListenerStats,
  onError: (e: Error) => void,
): { stop(): Promise<void> } {
  const onChunk = messageSplitter(onMessage, stats, onError);
  let stopped = false;
  let reader: { stop(): Promise<void> } | null = null;
  // Start after the caller got its handle back: callbacks never run inside open*().
  const started = Promise.resolve().then(() => {
    if (stopped) return;
    for (const chunk of early) onChunk(chunk);
    if (stopped) return;
    reader = startReader(fd, onChunk, (e) => onError(e), stats);
  });
  return {
    async stop() {
      stopped = true;
      await started.catch(() => {});
      await reader?.stop();
    },
  };
}

/** An NFLOG or NFQUEUE socket being read on the event loop. */
export interface PacketListener {
  readonly stats: ListenerStats;
  /**
   * Stops reading and closes the socket; resolves once no fd of this process refers to it any
   * more, so the group or queue is free and nothing here keeps the namespace alive (packets still
   * waiting for a verdict are then dropped by the kernel). Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Starts reading packet messages of `format` from `fd`: each one's attributes (with a header of
 * the right size) go to `onPacket`, anything else counts as a decode error. Returns the stats and
 * a close() that stops reading and releases the socket (once; later calls share the first).
 */
export function listenForPackets(
  fd: number,
  early: Uint8Array[],
  format: PacketFormat,
  onPacket: (attrs: (Uint8Array | undefined)[], header: Uint8Array) => void,
  onError: (e: Error) => void,
  what: string,
  beforeRelease: () => void = () => {},
): PacketListener {
  const stats: ListenerStats = { packets: 0, enobufs: 0, decodeErrors: 0 };
  const link = fdLink(fd);
  const listener = startListener(fd, early, packetDecoder(format, onPacket, stats), stats, onError);
  let closing: Promise<void> | null = null;
  return {
    stats,
    close() {
      closing ??= listener.stop().then(async () => {
        beforeRelease();
        if (!(await closeAndRelease(fd, link))) onError(new Error(`${what}: socket still open after close`));
      });
      return closing;
    },
  };
}
