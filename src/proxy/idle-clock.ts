// The idle clock of a tunnel or request (--idle-timeout), measured on both directions: looked at
// every quarter of the timeout, it says "idle" after four looks in a row without a byte either
// way. Moving a chunk then costs one store (refreshing a timer per chunk cost a tenth of a tunnel's
// throughput), and it fires between 1x and 1.25x the timeout after the last byte. The JS relay
// (connection.ts) looks from a timer, the splice thread (splice-worker.ts) from its epoll loop.

export class IdleClock {
  /** Set by whoever moves a byte; the next look clears it. */
  moved = false;
  private quiet = 0;

  constructor(readonly timeoutMs: number) {}

  get quarterMs(): number {
    return this.timeoutMs / 4;
  }

  /** One look: true when it is the fourth in a row that saw no byte. */
  look(): boolean {
    this.quiet = this.moved ? 0 : this.quiet + 1;
    this.moved = false;
    return this.quiet >= 4;
  }
}

/** The error text of an idle tunnel or request, the same from either relay. */
export const idleError = (timeoutMs: number): string => `no byte either way for ${timeoutMs / 1000} s`;
