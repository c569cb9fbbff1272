// Waiting for something that happens on its own time (an event line, a port, a byte count), bounded.

/**
 * Polls `f` every `everyMs` until it gives a truthy value, and returns that value; after `ms`
 * throws "timed out waiting for WHAT". A bound, not a timing assertion: pick it generously.
 */
export async function waitFor<T>(what: string, f: () => T | undefined | null | false, ms = 5000, everyMs = 5): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const r = f();
    if (r) return r;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what} (${ms} ms)`);
    await Bun.sleep(everyMs);
  }
}
