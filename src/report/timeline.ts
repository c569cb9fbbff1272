// A bounded timeline of one sandbox: the first attempts and requests in detail, and every one of
// them counted in a fixed number of time buckets whose width doubles as the run gets longer, so the
// memory stays the same for ten lines or ten million.

export type TimelineKind = "bypass" | "allowed" | "refused";
export const TIMELINE_KINDS: readonly TimelineKind[] = ["bypass", "allowed", "refused"];

export interface TimelineItem {
  /** Milliseconds since the epoch (the line's `ts`). */
  t: number;
  kind: TimelineKind;
  /** What happened, in a few words: `curl: tcp 198.51.100.7:80`, `GET example.com:80 ok`. */
  label: string;
}

export interface TimelineData {
  /** The first items, in the order they were read. */
  detail: TimelineItem[];
  /** Items counted in the buckets but not kept in `detail`. */
  notDetailed: number;
  /** Start of the first bucket (ms since the epoch), or null when nothing was counted. */
  origin: number | null;
  /** Width of one bucket, in ms. */
  bucketMs: number;
  /** Counts per bucket and kind; trailing empty buckets included. */
  buckets: Record<TimelineKind, number>[];
}

export const DETAIL_ITEMS = 200;
export const BUCKETS = 60;
const FIRST_BUCKET_MS = 10;

const emptyBucket = (): Record<TimelineKind, number> => ({ bypass: 0, allowed: 0, refused: 0 });

export class Timeline {
  private readonly detail: TimelineItem[] = [];
  private notDetailed = 0;
  private origin: number | null = null;
  private bucketMs = FIRST_BUCKET_MS;
  private readonly buckets: Record<TimelineKind, number>[] = Array.from({ length: BUCKETS }, emptyBucket);
  private used = 0;

  constructor(private readonly detailItems = DETAIL_ITEMS) {}

  /** No more items are kept in detail: callers need not make a label. */
  get detailFull(): boolean {
    return this.detail.length >= this.detailItems;
  }

  /** Counts an item; keeps it, with its label, while fewer than `detailItems` are kept. */
  add(t: number, kind: TimelineKind, label: string): void {
    if (this.detail.length < this.detailItems) this.detail.push({ t, kind, label });
    else this.notDetailed++;
    if (this.origin === null) this.origin = t;
    // Lines out of order (files given in another order than written) count in the first bucket.
    const offset = Math.max(0, t - this.origin);
    while (offset >= this.bucketMs * BUCKETS) this.widen();
    const i = Math.floor(offset / this.bucketMs);
    this.buckets[i]![kind]++;
    if (i + 1 > this.used) this.used = i + 1;
  }

  /** Twice as wide buckets: bucket i becomes the sum of buckets 2i and 2i+1. */
  private widen(): void {
    for (let i = 0; i < BUCKETS; i++) {
      const a = this.buckets[2 * i];
      const b = this.buckets[2 * i + 1];
      const merged = emptyBucket();
      for (const k of TIMELINE_KINDS) merged[k] = (a?.[k] ?? 0) + (b?.[k] ?? 0);
      this.buckets[i] = merged;
    }
    this.bucketMs *= 2;
    this.used = Math.ceil(this.used / 2);
  }

  data(): TimelineData {
    return {
      detail: [...this.detail],
      notDetailed: this.notDetailed,
      origin: this.origin,
      bucketMs: this.bucketMs,
      buckets: this.buckets.slice(0, this.used).map((b) => ({ ...b })),
    };
  }
}
