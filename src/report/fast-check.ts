// A yes/no check compiled from a valibot schema, for reading many event lines fast: valibot's
// safeParse builds a new output object and a dataset per field (6-10 µs a line here), which alone
// would take a 100,000-line report past a second. The check is made from the schema itself (the
// one source of truth) and answers what safeParse's `success` would, for the schema kinds and
// actions the event schema uses; anything else (a transformation, an unknown action) makes
// compileCheck throw, and the caller keeps valibot. A line that fails the check goes through
// valibot for the message, so the check only ever has to be right about success.
import type * as v from "valibot";

export type Check = (x: unknown) => boolean;

type Node = v.GenericSchema & Record<string, any>;
type Action = { kind: string; type: string; requirement?: any };

const OPTIONAL = new Set(["optional", "exact_optional", "nullish"]);
const hasOwn = Object.prototype.hasOwnProperty;

export class UnsupportedSchema extends Error {}

/** The check of one action of a pipe (after its schema accepted the value), or null for metadata. */
function action(a: Action): Check | null {
  if (a.kind === "metadata") return null;
  if (a.kind !== "validation") throw new UnsupportedSchema(`${a.kind} ${a.type}`);
  const r = a.requirement;
  switch (a.type) {
    case "integer":
      return (x) => Number.isInteger(x);
    case "min_value":
      return (x) => (x as number) >= r;
    case "max_value":
      return (x) => (x as number) <= r;
    case "min_length":
      return (x) => (x as string).length >= r;
    case "max_length":
      return (x) => (x as string).length <= r;
    case "regex":
      return (x) => (r as RegExp).test(x as string);
    default:
      throw new UnsupportedSchema(a.type);
  }
}

function base(s: Node): Check {
  switch (s.type) {
    case "string":
      return (x) => typeof x === "string";
    case "number":
      return (x) => typeof x === "number" && !Number.isNaN(x);
    case "boolean":
      return (x) => typeof x === "boolean";
    case "null":
      return (x) => x === null;
    case "literal": {
      const lit = s.literal;
      if (typeof lit === "number" && Number.isNaN(lit)) throw new UnsupportedSchema("NaN literal");
      return (x) => x === lit;
    }
    case "picklist": {
      const options = s.options as unknown[];
      return (x) => options.includes(x);
    }
    case "nullable": {
      if (s.default !== undefined) throw new UnsupportedSchema("nullable with a default");
      const inner = compileCheck(s.wrapped);
      return (x) => x === null || inner(x);
    }
    case "array": {
      const item = compileCheck(s.item);
      return (x) => Array.isArray(x) && x.every(item);
    }
    case "object":
    case "strict_object":
      return object(s, s.type === "strict_object");
    case "variant":
      return variant(s);
    default:
      throw new UnsupportedSchema(s.type);
  }
}

function object(s: Node, strict: boolean): Check {
  const keys = Object.keys(s.entries);
  const checks = keys.map((k) => {
    const e = s.entries[k] as Node;
    if (OPTIONAL.has(e.type) || e.fallback !== undefined) throw new UnsupportedSchema(`optional key ${k}`);
    return compileCheck(e);
  });
  const n = keys.length;
  return (x) => {
    if (!x || typeof x !== "object") return false;
    const o = x as Record<string, unknown>;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (!(k in o) || !checks[i]!(o[k])) return false;
    }
    if (strict) for (const k in o) if (!hasOwn.call(s.entries, k)) return false;
    return true;
  };
}

/** A variant of objects told apart by one literal key (nested variants are not supported). */
function variant(s: Node): Check {
  const key = s.key as string;
  const byTag = new Map<unknown, Check>();
  for (const o of s.options as Node[]) {
    const tag = o.entries?.[key] as Node | undefined;
    if (!tag || tag.type !== "literal" || o.pipe?.some((a: Action) => a.kind !== "schema" && a.kind !== "metadata")) throw new UnsupportedSchema("variant option");
    byTag.set(tag.literal, compileCheck(o));
  }
  return (x) => {
    if (!x || typeof x !== "object") return false;
    const c = byTag.get((x as Record<string, unknown>)[key]);
    return c !== undefined && c(x);
  };
}

/** The check for `schema`, or an UnsupportedSchema error. */
export function compileCheck(schema: v.GenericSchema): Check {
  const s = schema as Node;
  if (s.async) throw new UnsupportedSchema("async");
  // A pipe's first item is its schema (itself perhaps a pipe); the rest are its actions.
  const pipe = (s.pipe as Action[] | undefined)?.slice(1) ?? [];
  const head = s.pipe ? compileCheck(s.pipe[0] as v.GenericSchema) : base(s);
  const actions = pipe.map(action).filter((c): c is Check => c !== null);
  if (actions.length === 0) return head;
  return (x) => {
    if (!head(x)) return false;
    for (const a of actions) if (!a(x)) return false;
    return true;
  };
}
