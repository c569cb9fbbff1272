// When the watch thread may run at real-time priority. Real time is what lets it start a lookup
// within ~0.15 ms of a UDP client's rejected send; at normal priority it sometimes waited 3-4 ms
// for a CPU, behind the very client it was to name. But a real-time thread that keeps a CPU busy
// (a flood) would starve everything else on it, the proxy included.

const WINDOW_MS = 100;
/** More than this much work in a window: back to normal priority. */
const BUSY_MS = 20;
/** A window with less than this: real time again. */
const CALM_MS = 5;

/**
 * Real time while the thread is cheap: one that spends more than BUSY_MS of a WINDOW_MS window
 * handling packets goes back to normal priority, and returns to real time after a window under
 * CALM_MS. So it takes at most about a fifth of one CPU ahead of everything else.
 */
export class ThreadPriority {
  private windowStart: number;
  private spent = 0;
  private realtime: boolean;
  /** Without CAP_SYS_NICE (the first request fails) the thread stays at normal priority. */
  readonly allowed: boolean;

  /** `setRealtime(on)` changes the calling thread's policy and says whether the kernel agreed. */
  constructor(
    private readonly setRealtime: (on: boolean) => boolean,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowStart = now();
    this.realtime = setRealtime(true);
    this.allowed = this.realtime;
  }

  /** `ms` of work was just done. */
  account(ms: number): void {
    const now = this.now();
    if (now - this.windowStart > WINDOW_MS) {
      if (this.allowed && !this.realtime && this.spent < CALM_MS) this.realtime = this.setRealtime(true);
      this.windowStart = now;
      this.spent = 0;
    }
    this.spent += ms;
    if (this.realtime && this.spent > BUSY_MS) this.realtime = !this.setRealtime(false);
  }

  get isRealtime(): boolean {
    return this.realtime;
  }
}
