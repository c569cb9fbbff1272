// Policy files (YAML, or JSON, which YAML includes), validated with valibot at the edge. Every error
// is one line that names the file, the entry and what is wrong.
//
//   allow:
//     - registry.npmjs.org            # a RULE string: HOST[:PORTS]
//     - "*.github.com:443"
//     - host: 10.20.0.0/16            # or an object: host (a RULE), ports, exe globs
//       ports: [5432, "8000-8100"]
//       exe: [/usr/bin/psql, "/opt/app/**"]
//   deny:
//     - "*.evil.example"
import { readInputText } from "../sys/input-file.ts";
import * as v from "valibot";

const PortItem = v.union([v.pipe(v.number(), v.integer("a port is a whole number")), v.string()], "a port is a number or a string such as \"8000-8100\"");

const EntryObject = v.strictObject(
  {
    host: v.pipe(v.string("host must be a string"), v.minLength(1, "host must not be empty")),
    ports: v.optional(v.union([PortItem, v.array(PortItem)], "ports is a port, a string such as \"80,443\" or \"8000-8100\", or a list of them")),
    exe: v.optional(
      v.union(
        [v.pipe(v.string(), v.minLength(1, "exe must not be empty")), v.pipe(v.array(v.pipe(v.string(), v.minLength(1, "exe must not be empty"))), v.minLength(1, "exe must not be an empty list"))],
        "exe is a path glob or a list of them",
      ),
    ),
    comment: v.optional(v.string("comment must be a string")),
  },
  (issue) =>
    issue.expected === "never"
      ? `unknown key ${JSON.stringify(String(issue.path?.at(-1)?.key))} (an entry has host, ports, exe, comment)`
      : issue.path?.length
        ? `${String(issue.path.at(-1)!.key)} is missing`
        : "an entry is a RULE string or an object",
);

const Entry = v.union([v.string(), EntryObject], "an entry is a RULE string (HOST[:PORTS]) or an object with host, ports, exe");
const EntryList = v.array(v.nullable(Entry), "must be a list of entries");

export const PolicyFileSchema = v.strictObject(
  {
    allow: v.optional(v.nullable(EntryList)),
    deny: v.optional(v.nullable(EntryList)),
  },
  (issue) => (issue.expected === "never" ? `unknown key ${JSON.stringify(String(issue.path?.at(-1)?.key))} at the top (a policy file has allow: and deny:)` : "expected a mapping with allow: and deny: lists"),
);

export type PolicyFileEntry = v.InferOutput<typeof Entry>;

/** One entry as the rule loader takes it. */
export interface RawEntry {
  action: "allow" | "deny";
  /** Where it came from: `FILE allow[2]`, or `--allow`. */
  origin: string;
  /** The file, or null for --allow/--deny. */
  file: string | null;
  /** The entry in the file: `allow[2]`. */
  where: string;
  host: string;
  /** Ports written apart from host, as "80,443" text; null when not given. */
  ports: string | null;
  exe: string[] | null;
}

function pathText(path: readonly v.IssuePathItem[]): string {
  let out = "";
  for (const p of path) out += typeof p.key === "number" ? `[${p.key}]` : out === "" ? String(p.key) : `.${String(p.key)}`;
  return out;
}

/** Bun's YAML errors carry no position: the first line whose prefix of the file fails to parse. */
function firstBadLine(text: string): number | null {
  const lines = text.split("\n");
  if (lines.length > 2000) return null;
  for (let n = 1; n <= lines.length; n++) {
    try {
      Bun.YAML.parse(lines.slice(0, n).join("\n"));
    } catch {
      return n;
    }
  }
  return null;
}

/**
 * A union's own message ("an entry is a RULE string or an object ...") says more than its members'
 * complaints, unless the input was of one member's type and failed deeper inside it (an unknown
 * key, bad ports): then that deeper issue is the one to show.
 */
function innermost(issue: v.BaseIssue<unknown>, outer: v.IssuePathItem[] = []): { message: string; path: v.IssuePathItem[] } {
  const path = [...outer, ...(issue.path ?? [])];
  if (issue.type === "union" && issue.issues) {
    // The members' paths start where the union's ends.
    const deeper = issue.issues.find((i) => (i.path?.length ?? 0) > 0);
    if (deeper) return innermost(deeper, path);
  }
  // An unknown or a missing key: the message names it already.
  if (issue.type === "strict_object" && (issue.expected === "never" || issue.input === undefined)) path.pop();
  return { message: issue.message, path };
}

/** The entries of one policy file, or a one-line error naming the file. */
export function readPolicyFile(file: string): RawEntry[] | string {
  const read = readInputText(file);
  if ("why" in read) return `${file}: cannot read: ${read.why}`;
  const text = read.text;
  let doc: unknown;
  try {
    doc = file.endsWith(".json") ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (e) {
    const what = (e as Error).message.replace(/^(YAML|JSON) Parse error: /, "");
    if (file.endsWith(".json")) return `${file}: not valid JSON: ${what}`;
    const line = firstBadLine(text);
    return `${file}: not valid YAML${line === null ? "" : ` (near line ${line})`}: ${what}`;
  }
  if (doc === null || doc === undefined) return `${file}: empty (a policy file has allow: and deny: lists)`;
  if (typeof doc !== "object" || Array.isArray(doc)) return `${file}: expected a mapping with allow: and deny: lists`;
  const r = v.safeParse(PolicyFileSchema, doc);
  if (!r.success) {
    const issue = innermost(r.issues[0]);
    const where = pathText(issue.path);
    return `${file}: ${where === "" ? "" : `${where}: `}${issue.message}`;
  }
  return entriesOf(file, r.output);
}

export function entriesOf(file: string, doc: v.InferOutput<typeof PolicyFileSchema>): RawEntry[] {
  const out: RawEntry[] = [];
  for (const action of ["allow", "deny"] as const) {
    (doc[action] ?? []).forEach((e, i) => {
      if (e === null) return;
      const where = `${action}[${i}]`;
      const origin = `${file} ${where}`;
      if (typeof e === "string") out.push({ action, origin, file, where, host: e, ports: null, exe: null });
      else {
        const ports = e.ports === undefined ? null : [e.ports].flat().map(String).join(",");
        out.push({ action, origin, file, where, host: e.host, ports, exe: e.exe === undefined ? null : [e.exe].flat() });
      }
    });
  }
  return out;
}
