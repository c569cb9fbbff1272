// A flood makes garbage fast (/proc reads, packets, lines) and JavaScriptCore grows its heap rather
// than collect eagerly. Measured in bench/flood.ts (RSS growth over 10 s at 10,000 attempts/s):
// a full collection every 500 reports alone +45%; with a young-generation (eden) collection every
// 50 in between, +13-18%, about what a full one every 50 gives, at a fraction of the pause. Each
// thread (the main one, the watch thread) has a heap of its own and collects it itself.
const FULL_EVERY = 500;
const EDEN_EVERY = 50;

export class GcPacer {
  private since = 0;

  /** One more report made. */
  tick(): void {
    if (++this.since >= FULL_EVERY) {
      this.since = 0;
      Bun.gc(true);
    } else if (this.since % EDEN_EVERY === 0) {
      Bun.gc(false);
    }
  }
}
