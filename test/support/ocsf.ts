// A validator of OCSF events against the OCSF 1.8.0 schema as its server publishes it (classes and
// objects with every attribute resolved), copied to test/fixtures/ocsf/ (Apache License 2.0, see
// its LICENSE): required attributes present, enumerations respected (and the caption siblings
// matching them), types right, attributes of a profile only when metadata.profiles declares it,
// no attribute the schema does not define, and the classes' constraints; recursively through every
// object used. No bun:test here, so that other tests can use it.
//
// DNS Activity (4003) is not in the compiled set: it is put together here from the source files
// (dns_activity.json extends network.json extends base_event), with the attribute types taken from
// the compiled classes that share them.
//
// Three objects proxywall uses are in neither set (user, network_connection_info, network_traffic),
// nor is the type of DNS Activity's `query`; SUPPLEMENT below describes the attributes proxywall
// uses of them, from the OCSF 1.8.0 documentation (schema.ocsf.io). Replace it with the server's
// compiled objects when they are copied in.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";

const DIR = join(import.meta.dir, "../fixtures/ocsf");

interface EnumValue {
  caption: string;
}
interface Attribute {
  type: string;
  object_type?: string;
  requirement?: string;
  enum?: Record<string, EnumValue>;
  is_array?: boolean;
  profiles?: string[] | null;
  sibling?: string;
}
interface Definition {
  name: string;
  caption?: string;
  attributes: Record<string, Attribute>;
  constraints?: { at_least_one?: string[]; just_one?: string[] };
}

const SUPPLEMENT: Record<string, Definition> = {
  user: {
    name: "user",
    attributes: { uid: { type: "string_t", requirement: "recommended" }, name: { type: "username_t", requirement: "recommended" } },
    constraints: { at_least_one: ["account", "name", "uid"] },
  },
  network_connection_info: {
    name: "network_connection_info",
    attributes: {
      direction_id: { type: "integer_t", requirement: "required", sibling: "direction", enum: { 0: { caption: "Unknown" }, 1: { caption: "Inbound" }, 2: { caption: "Outbound" }, 3: { caption: "Lateral" }, 99: { caption: "Other" } } },
      direction: { type: "string_t", requirement: "optional" },
      protocol_num: { type: "integer_t", requirement: "recommended" },
      protocol_name: { type: "string_t", requirement: "recommended" },
      protocol_ver_id: { type: "integer_t", requirement: "recommended", enum: { 0: { caption: "Unknown" }, 4: { caption: "Internet Protocol version 4 (IPv4)" }, 6: { caption: "Internet Protocol version 6 (IPv6)" }, 99: { caption: "Other" } } },
    },
  },
  network_traffic: {
    name: "network_traffic",
    attributes: { bytes: { type: "long_t", requirement: "recommended" }, bytes_in: { type: "long_t", requirement: "recommended" }, bytes_out: { type: "long_t", requirement: "recommended" } },
  },
};
/** DNS Activity attributes whose type the source files leave to the dictionary (not copied). */
const DNS_TYPES: Record<string, Pick<Attribute, "type" | "object_type">> = { query: { type: "object_t", object_type: "dns_query" } };
const DNS_QUERY_TYPES: Record<string, string> = { hostname: "hostname_t", type: "string_t", class: "string_t", opcode: "string_t", opcode_id: "integer_t", packet_uid: "integer_t" };

const readJson = (path: string) => JSON.parse(readFileSync(join(DIR, path), "utf8"));

const classes = new Map<number, Definition>();
const objects = new Map<string, Definition>();

function compiledClass(name: string): Definition {
  return readJson(`compiled-1.8.0/classes/${name}.json`) as Definition;
}

function loadObject(name: string): Definition | null {
  if (objects.has(name)) return objects.get(name)!;
  let def: Definition | null = null;
  try {
    def = readJson(`compiled-1.8.0/objects/${name}.json`) as Definition;
  } catch {}
  if (!def && name === "dns_query") {
    const src = readJson("source/objects/dns_query.json") as { attributes: Record<string, { requirement?: string }> };
    const attributes: Record<string, Attribute> = {};
    for (const [k, a] of Object.entries(src.attributes)) attributes[k] = { type: DNS_QUERY_TYPES[k] ?? "unknown_t", requirement: a.requirement ?? "optional" };
    def = { name, attributes };
  }
  def ??= SUPPLEMENT[name] ?? null;
  if (def) objects.set(name, def);
  return def;
}

/** DNS Activity (4003), put together from the source files. */
function dnsActivity(): Definition {
  const base = compiledClass("base_event");
  const typed = compiledClass("network_activity").attributes;
  const attributes: Record<string, Attribute> = structuredClone(base.attributes);
  const network = readJson("source/events/network/network.json") as { attributes: Record<string, Partial<Attribute>>; constraints: Definition["constraints"] };
  const dns = readJson("source/events/network/dns_activity.json") as { uid: number; caption: string; attributes: Record<string, Partial<Attribute>> };
  for (const layer of [network.attributes, dns.attributes]) {
    for (const [k, a] of Object.entries(layer)) {
      if (k === "$include") continue;
      const known = attributes[k] ?? typed[k] ?? { ...(DNS_TYPES[k] ?? { type: "unknown_t" }) };
      const merged: Attribute = { ...structuredClone(known), ...(a.requirement ? { requirement: a.requirement } : {}) };
      if (a.enum) merged.enum = { ...(attributes[k]?.enum ?? {}), ...(a.enum as Record<string, EnumValue>) };
      attributes[k] = merged;
    }
  }
  const uid = 4000 + dns.uid;
  attributes.class_uid = { ...attributes.class_uid!, enum: { [uid]: { caption: dns.caption } } };
  attributes.category_uid = { ...attributes.category_uid!, enum: { 4: { caption: "Network Activity" } } };
  attributes.type_uid = {
    ...attributes.type_uid!,
    enum: Object.fromEntries(Object.entries(attributes.activity_id!.enum!).map(([id, e]) => [String(uid * 100 + Number(id)), { caption: `${dns.caption}: ${e.caption}` }])),
  };
  return { name: "dns_activity", caption: dns.caption, attributes, constraints: network.constraints };
}

export function ocsfClass(uid: number): Definition {
  if (!classes.has(uid)) {
    const name = { 4001: "network_activity", 4003: null, 6002: "application_lifecycle" }[uid];
    if (name === undefined) throw new Error(`no OCSF class ${uid} among the fixtures`);
    classes.set(uid, name === null ? dnsActivity() : compiledClass(name));
  }
  return classes.get(uid)!;
}

const STRING_TYPES = new Set(["string_t", "process_name_t", "file_path_t", "file_name_t", "hostname_t", "url_t", "username_t", "uuid_t", "mac_t", "email_t", "subnet_t", "resource_uid_t"]);

function typeIssue(type: string, x: unknown): string | null {
  if (STRING_TYPES.has(type)) return typeof x === "string" ? null : "is not a string";
  switch (type) {
    case "ip_t":
      return typeof x === "string" && isIP(x) !== 0 ? null : "is not an IP address";
    case "datetime_t":
      return typeof x === "string" && /^\d{4}-\d{2}-\d{2}T/.test(x) && !Number.isNaN(Date.parse(x)) ? null : "is not an RFC 3339 time";
    case "integer_t":
      return Number.isInteger(x) && (x as number) >= -(2 ** 31) && (x as number) < 2 ** 31 ? null : "is not a 32-bit integer";
    case "long_t":
      return Number.isSafeInteger(x) ? null : "is not an integer";
    case "port_t":
      return Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 65535 ? null : "is not a port";
    case "timestamp_t":
      return Number.isSafeInteger(x) && (x as number) >= 0 ? null : "is not milliseconds since the epoch";
    case "float_t":
      return typeof x === "number" ? null : "is not a number";
    case "boolean_t":
      return typeof x === "boolean" ? null : "is not a boolean";
    case "json_t":
      return null;
    case "object_t":
      return x !== null && typeof x === "object" && !Array.isArray(x) ? null : "is not an object";
    default:
      return `has type ${type}, which this validator does not know`;
  }
}

function check(def: Definition, value: unknown, path: string, profiles: readonly string[], issues: string[]): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    issues.push(`${path || "(event)"}: is not an object`);
    return;
  }
  const o = value as Record<string, unknown>;
  const active = (a: Attribute) => !a.profiles || a.profiles.some((p) => profiles.includes(p));
  for (const [k, a] of Object.entries(def.attributes)) {
    if (a.requirement === "required" && active(a) && !(k in o)) issues.push(`${path}${k}: required by ${def.name}, missing`);
  }
  for (const [k, x] of Object.entries(o)) {
    const p = `${path}${k}`;
    const a = def.attributes[k];
    if (!a) {
      issues.push(`${p}: ${def.name} has no such attribute`);
      continue;
    }
    if (!active(a)) issues.push(`${p}: belongs to profile ${a.profiles!.join("/")}, not declared in metadata.profiles`);
    if (x === null || x === undefined) {
      issues.push(`${p}: is ${x} (leave it out instead)`);
      continue;
    }
    const items = a.is_array ? (Array.isArray(x) ? x : (issues.push(`${p}: is not an array`), [])) : [x];
    items.forEach((item, i) => {
      const ip = a.is_array ? `${p}[${i}]` : p;
      const t = typeIssue(a.type, item);
      if (t) return void issues.push(`${ip}: ${t}`);
      if (a.enum && !(String(item) in a.enum)) issues.push(`${ip}: ${String(item)} is not one of ${Object.keys(a.enum).join(", ")}`);
      if (a.type === "object_t" && a.object_type !== "object") {
        const od = loadObject(a.object_type!);
        if (!od) issues.push(`${ip}: no definition of object ${a.object_type} among the fixtures`);
        else check(od, item, `${ip}.`, profiles, issues);
      }
    });
    if (a.enum && a.sibling && a.sibling in o && !a.is_array) {
      const caption = a.enum[String(x)]?.caption;
      if (caption !== undefined && String(x) !== "99" && o[a.sibling] !== caption) issues.push(`${path}${a.sibling}: ${JSON.stringify(o[a.sibling])} is not the caption of ${k} ${String(x)} (${caption})`);
    }
  }
  const c = def.constraints;
  if (c?.at_least_one && !c.at_least_one.some((k) => k in o)) issues.push(`${path || "(event)"}: ${def.name} needs at least one of ${c.at_least_one.join(", ")}`);
  if (c?.just_one && c.just_one.filter((k) => k in o).length !== 1) issues.push(`${path || "(event)"}: ${def.name} needs exactly one of ${c.just_one.join(", ")}`);
}

/** What is wrong with `event` as an OCSF 1.8.0 event; empty when it validates. */
export function ocsfIssues(event: unknown): string[] {
  const e = event as Record<string, unknown>;
  const uid = e?.class_uid;
  let def: Definition;
  try {
    def = ocsfClass(uid as number);
  } catch (err) {
    return [`class_uid: ${(err as Error).message}`];
  }
  const issues: string[] = [];
  const profiles = ((e.metadata as Record<string, unknown> | undefined)?.profiles as string[] | undefined) ?? [];
  check(def, e, "", profiles, issues);
  if (typeof e.type_uid === "number" && e.type_uid !== (uid as number) * 100 + (e.activity_id as number)) issues.push(`type_uid: ${e.type_uid} is not class_uid * 100 + activity_id`);
  if ((e.metadata as Record<string, unknown> | undefined)?.version !== "1.8.0") issues.push("metadata.version: not 1.8.0");
  return issues;
}
