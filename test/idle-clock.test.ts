// The idle clock both relays share (src/proxy/idle-clock.ts).
import { expect, test } from "bun:test";
import { IdleClock, idleError } from "../src/proxy/idle-clock.ts";

test("idle after four looks in a row without a byte; a byte starts the count again", () => {
  const c = new IdleClock(2000);
  expect(c.quarterMs).toBe(500);
  expect([c.look(), c.look(), c.look()]).toEqual([false, false, false]);
  c.moved = true;
  expect([c.look(), c.look(), c.look(), c.look()]).toEqual([false, false, false, false]);
  expect(c.look()).toBe(true);
  expect(idleError(2000)).toBe("no byte either way for 2 s");
});
