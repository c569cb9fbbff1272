// ThreadPriority: real time while cheap, normal priority under load, never real time without leave.
import { describe, expect, test } from "bun:test";
import { ThreadPriority } from "../src/monitor/thread-priority.ts";

function harness(kernelAllows: boolean) {
  let t = 0;
  const calls: boolean[] = [];
  const p = new ThreadPriority(
    (on) => {
      calls.push(on);
      return kernelAllows;
    },
    () => t,
  );
  return { p, calls, at: (ms: number) => (t = ms) };
}

describe("ThreadPriority", () => {
  test("starts at real time when the kernel allows it", () => {
    const h = harness(true);
    expect(h.p.allowed).toBe(true);
    expect(h.p.isRealtime).toBe(true);
    expect(h.calls).toEqual([true]);
  });

  test("light work keeps real time and asks the kernel nothing more", () => {
    const h = harness(true);
    for (let ms = 0; ms < 1000; ms += 10) {
      h.at(ms);
      h.p.account(0.5);
    }
    expect(h.p.isRealtime).toBe(true);
    expect(h.calls).toEqual([true]);
  });

  test("more than 20 ms of work in a 100 ms window drops to normal; a calm window restores it", () => {
    const h = harness(true);
    h.at(10);
    h.p.account(15);
    expect(h.p.isRealtime).toBe(true);
    h.at(20);
    h.p.account(6);
    expect(h.p.isRealtime).toBe(false);
    // Still busy in the next window: stays normal.
    h.at(150);
    h.p.account(10);
    h.at(300);
    h.p.account(1);
    expect(h.p.isRealtime).toBe(false);
    // The window that ended at 300 had 10 ms: not calm. The next one (1 ms) is.
    h.at(450);
    h.p.account(1);
    expect(h.p.isRealtime).toBe(true);
    expect(h.calls).toEqual([true, false, true]);
  });

  test("without CAP_SYS_NICE it never asks again", () => {
    const h = harness(false);
    expect(h.p.allowed).toBe(false);
    for (let ms = 0; ms < 1000; ms += 50) {
      h.at(ms);
      h.p.account(ms % 100 === 0 ? 30 : 0);
    }
    expect(h.calls).toEqual([true]);
    expect(h.p.isRealtime).toBe(false);
  });
});
