// The edge of `report`: a line of text in, a validated event (or why it is not one) out.
import * as v from "valibot";
import { EventLine } from "../events/schema.ts";
import { compileCheck, UnsupportedSchema, type Check } from "./fast-check.ts";

/** The schema of each event kind, to validate a line against its own kind only. */
const BY_KIND = new Map<string, v.GenericSchema>(EventLine.options.map((o) => [o.entries.event.literal, o as v.GenericSchema]));
/** A fast check compiled from each kind's schema, where the schema allows one (see fast-check.ts). */
const CHECKS = new Map<string, Check>();
for (const [kind, schema] of BY_KIND) {
  try {
    CHECKS.set(kind, compileCheck(schema));
  } catch (e) {
    if (!(e instanceof UnsupportedSchema)) throw e;
  }
}

/**
 * A line as an event, or the reason it is not one. A line from an older proxywall lacks the fields
 * added since (each added as nullable): those read as null.
 */
export function parseEventLine(line: string): EventLine | string {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return "not a JSON object";
  const kind = String((obj as { event?: unknown }).event);
  const schema = BY_KIND.get(kind);
  if (!schema || (obj as { v?: unknown }).v !== 1) return "not a proxywall event";
  if (CHECKS.get(kind)?.(obj)) return obj as EventLine;
  let r = v.safeParse(schema, obj);
  if (!r.success) {
    const missing = r.issues.filter((i) => i.kind === "schema" && i.input === undefined && i.path?.length === 1).map((i) => String(i.path![0]!.key));
    if (missing.length > 0 && missing.length === r.issues.length) r = v.safeParse(schema, { ...obj, ...Object.fromEntries(missing.map((k) => [k, null])) });
  }
  if (r.success) return r.output as EventLine;
  const issue = r.issues[0];
  return `${(obj as { event: string }).event}: ${issue.path?.map((p) => String(p.key)).join(".") ?? ""} ${issue.message}`.trim();
}
