// fast-check.ts: the check compiled from the event schema says yes exactly when valibot does, on
// the fixture's real lines and on many broken copies of them.
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { compileCheck, UnsupportedSchema } from "../src/report/fast-check.ts";
import { fixtureEvents } from "./support/report-fixture.ts";

const byKind = new Map(EventLine.options.map((o) => [o.entries.event.literal as string, o as v.GenericSchema]));

/** Copies of `obj` with one thing broken at each place: removed, null, a string, a number, an array, an extra key. */
function* mutations(obj: any, path: string[] = []): Generator<[string, unknown]> {
  if (obj === null || typeof obj !== "object") return;
  const keys = Array.isArray(obj) ? obj.map((_, i) => String(i)) : Object.keys(obj);
  for (const k of keys) {
    for (const [name, val] of [["null", null], ["string", "x"], ["number", -1.5], ["array", []], ["object", {}], ["bool", true], ["int", 70000]] as const) {
      const c = structuredClone(obj);
      c[k] = val;
      yield [`${[...path, k].join(".")}=${name}`, c];
    }
    if (!Array.isArray(obj)) {
      const c = structuredClone(obj);
      delete c[k];
      yield [`${[...path, k].join(".")} removed`, c];
    }
    for (const [name, inner] of mutations(obj[k], [...path, k])) {
      const c = structuredClone(obj);
      c[k] = inner;
      yield [name, c];
    }
  }
  if (!Array.isArray(obj)) yield [`${path.join(".")} extra key`, { ...obj, extra_key: 1 }];
}

describe("fast check", () => {
  const checks = new Map([...byKind].map(([k, s]) => [k, compileCheck(s)]));

  test("every event kind of the schema compiles", () => {
    expect([...checks.keys()].sort()).toEqual([...byKind.keys()].sort());
  });

  test("agrees with valibot on real lines and on every one-field break of them", () => {
    let n = 0;
    for (const e of fixtureEvents()) {
      const schema = byKind.get(e.event)!;
      const check = checks.get(e.event)!;
      expect(check(e)).toBe(true);
      for (const [name, m] of mutations(e)) {
        n++;
        const want = v.safeParse(schema, m).success;
        if (check(m) !== want) throw new Error(`${e.event} ${name}: check says ${!want}, valibot ${want}`);
      }
    }
    expect(n).toBeGreaterThan(1000);
  });

  test("schemas it cannot mirror are refused, so valibot is used", () => {
    expect(() => compileCheck(v.pipe(v.string(), v.transform((s) => s.length)))).toThrow(UnsupportedSchema);
    expect(() => compileCheck(v.object({ a: v.optional(v.string(), "x") }))).toThrow(UnsupportedSchema);
    expect(() => compileCheck(v.record(v.string(), v.number()))).toThrow(UnsupportedSchema);
    expect(() => compileCheck(v.tuple([v.string()]))).toThrow(UnsupportedSchema);
  });

  test("the actions it knows", () => {
    const c = compileCheck(v.object({ s: v.pipe(v.string(), v.minLength(2), v.maxLength(3), v.regex(/^a/)), n: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(9)) }));
    expect(c({ s: "ab", n: 3 })).toBe(true);
    expect(c({ s: "ab", n: 3, more: 1 })).toBe(true); // object, not strict
    for (const bad of [{ s: "a", n: 3 }, { s: "abcd", n: 3 }, { s: "bb", n: 3 }, { s: "ab", n: 0 }, { s: "ab", n: 10 }, { s: "ab", n: 1.5 }, { s: "ab", n: NaN }, { s: "ab" }]) expect(c(bad)).toBe(false);
  });

  test("optional keys and unions, as valibot reads them", () => {
    const schema = v.strictObject({
      o: v.optional(v.nullable(v.number())),
      e: v.exactOptional(v.string()),
      n: v.nullish(v.pipe(v.string(), v.minLength(2))),
      u: v.union([v.picklist(["tcp", "udp"]), v.pipe(v.string(), v.regex(/^ip-\d{1,3}$/))]),
    });
    const c = compileCheck(schema);
    const cases: unknown[] = [
      { u: "tcp" }, { u: "ip-17" }, { u: "ip-x" }, { u: 6 }, {},
      { u: "udp", o: 1 }, { u: "udp", o: null }, { u: "udp", o: undefined }, { u: "udp", o: "1" },
      { u: "udp", e: "s" }, { u: "udp", e: undefined }, { u: "udp", e: 1 },
      { u: "udp", n: null }, { u: "udp", n: undefined }, { u: "udp", n: "ab" }, { u: "udp", n: "a" },
      { u: "udp", extra: 1 },
    ];
    for (const x of cases) expect({ x, ok: c(x) }).toEqual({ x, ok: v.safeParse(schema, x).success });
  });
});
