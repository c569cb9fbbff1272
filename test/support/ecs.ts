// A validator of ECS documents against the ECS field list Elastic publishes (ecs_flat.yml, shipped
// as EcsFlat in the @elastic/ecs package, a devDependency for this): every leaf is a field ECS
// defines (labels.* being ECS's own custom key/value pairs, keyword values), of the field's type,
// an array only where ECS normalizes the field to one, with the allowed values where ECS lists
// them (event.kind/category/type/outcome, network.direction, ...), event.type among those ECS
// expects for the event.category given, and the required fields present. No bun:test here.
import { EcsFlat, EcsVersion } from "@elastic/ecs";
import { isIP } from "node:net";

interface Field {
  type: string;
  normalize: string[];
  required?: boolean;
  allowed_values?: { name: string; expected_event_types?: string[] }[];
  expected_values?: string[];
}
const FIELDS = EcsFlat as unknown as Record<string, Field>;

export const ECS_PACKAGE_VERSION: string = EcsVersion;

function typeIssue(type: string, x: unknown): string | null {
  switch (type) {
    case "keyword":
    case "constant_keyword":
    case "wildcard":
    case "match_only_text":
    case "text":
      return typeof x === "string" ? null : "is not a string";
    case "long":
    case "integer":
      return Number.isSafeInteger(x) ? null : "is not an integer";
    case "float":
    case "double":
    case "scaled_float":
      return typeof x === "number" ? null : "is not a number";
    case "boolean":
      return typeof x === "boolean" ? null : "is not a boolean";
    case "ip":
      return typeof x === "string" && isIP(x) !== 0 ? null : "is not an IP address";
    case "date":
      return typeof x === "string" && /^\d{4}-\d{2}-\d{2}T/.test(x) && !Number.isNaN(Date.parse(x)) ? null : "is not an ISO 8601 date";
    default:
      return `has ECS type ${type}, which this validator does not check`;
  }
}

/** The leaves of a nested document as dotted names (arrays of values are leaves). */
function leaves(doc: Record<string, unknown>, prefix = "", out: [string, unknown][] = []): [string, unknown][] {
  for (const [k, x] of Object.entries(doc)) {
    const name = prefix + k;
    if (x !== null && typeof x === "object" && !Array.isArray(x)) leaves(x as Record<string, unknown>, `${name}.`, out);
    else out.push([name, x]);
  }
  return out;
}

/** What is wrong with `doc` as an ECS document; empty when every field is ECS's and right. */
export function ecsIssues(doc: unknown): string[] {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return ["(document): is not an object"];
  const issues: string[] = [];
  const flat = leaves(doc as Record<string, unknown>);
  const present = new Set(flat.map(([k]) => k));
  for (const [name, f] of Object.entries(FIELDS)) if (f.required && !present.has(name)) issues.push(`${name}: required by ECS, missing`);
  for (const [name, x] of flat) {
    if (name.startsWith("labels.")) {
      if (name.split(".").length !== 2) issues.push(`${name}: labels must not nest`);
      else if (typeof x !== "string") issues.push(`${name}: a label is a keyword (string)`);
      continue;
    }
    const f = FIELDS[name];
    if (!f) {
      issues.push(`${name}: not an ECS field`);
      continue;
    }
    if (x === null || x === undefined) {
      issues.push(`${name}: is ${x} (leave it out instead)`);
      continue;
    }
    if (Array.isArray(x) && !f.normalize.includes("array")) issues.push(`${name}: ECS does not make it an array`);
    const values = Array.isArray(x) ? x : [x];
    for (const value of values) {
      const t = typeIssue(f.type, value);
      if (t) issues.push(`${name}: ${t}`);
      const allowed = f.allowed_values?.map((a) => a.name) ?? f.expected_values;
      if (allowed && !allowed.includes(value as string)) issues.push(`${name}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
    }
  }
  const event = (doc as { event?: { category?: string[]; type?: string[] } }).event;
  if (event?.category && event.type) {
    const expected = new Set(event.category.flatMap((c) => FIELDS["event.category"]!.allowed_values!.find((a) => a.name === c)?.expected_event_types ?? []));
    for (const t of event.type) if (!expected.has(t)) issues.push(`event.type: ${t} is not expected with event.category ${event.category.join(", ")}`);
  }
  return issues;
}
