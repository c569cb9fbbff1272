// timeline.ts: first items in detail, all of them in at most BUCKETS buckets whose width doubles.
import { describe, expect, test } from "bun:test";
import { BUCKETS, Timeline } from "../src/report/timeline.ts";

const total = (t: ReturnType<Timeline["data"]>) => t.buckets.reduce((a, b) => a + b.bypass + b.allowed + b.refused, 0);

describe("timeline", () => {
  test("keeps the first items in detail and counts every item once", () => {
    const tl = new Timeline(3);
    for (let i = 0; i < 10; i++) tl.add(1000 + i, i % 2 ? "allowed" : "bypass", `x${i}`);
    const d = tl.data();
    expect(d.detail.map((x) => x.label)).toEqual(["x0", "x1", "x2"]);
    expect(d.notDetailed).toBe(7);
    expect(total(d)).toBe(10);
    expect(d.origin).toBe(1000);
  });

  test("a long run widens the buckets and keeps the counts", () => {
    const tl = new Timeline(0);
    for (let i = 0; i < 5000; i++) tl.add(i * 997, i % 3 ? "refused" : "bypass", "");
    const d = tl.data();
    expect(d.buckets.length).toBeLessThanOrEqual(BUCKETS);
    expect(d.buckets.length * d.bucketMs).toBeGreaterThan(4999 * 997);
    expect(total(d)).toBe(5000);
    expect(d.buckets.reduce((a, b) => a + b.bypass, 0)).toBe(Math.ceil(5000 / 3));
  });

  test("an item earlier than the first counts in the first bucket", () => {
    const tl = new Timeline();
    tl.add(5000, "bypass", "a");
    tl.add(1000, "allowed", "b");
    expect(tl.data().buckets[0]).toEqual({ bypass: 1, allowed: 1, refused: 0 });
  });

  test("empty", () => {
    expect(new Timeline().data()).toMatchObject({ origin: null, buckets: [], detail: [] });
  });
});
