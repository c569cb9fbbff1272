// `proxywall parse` as a user runs it: a subprocess on the fixture files and on standard input.
// Every line it prints must be whole JSON, valid against the valibot schema and against the JSON
// Schema that `proxywall schema` prints.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { HINTS } from "../src/events/hints.ts";
import { runCli as proxywall } from "./support/cli.ts";

const ROOT = path.join(import.meta.dir, "..");
const FIXTURES = path.join(import.meta.dir, "fixtures");
const KMSG = path.join(FIXTURES, "kmsg-records.txt");
const DMESG = path.join(FIXTURES, "dmesg-lines.txt");
const LONG_PREFIX = "openshell:bypass:sandbox-abcd1234:";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}


// ---- a validator for the part of JSON Schema (2020-12) that `proxywall schema` uses -------------

type Schema = Record<string, unknown>;
const ANNOTATIONS = new Set(["$schema", "$id", "title", "description"]);
const KNOWN = new Set([
  ...ANNOTATIONS,
  "type",
  "const",
  "enum",
  "anyOf",
  "oneOf",
  "pattern",
  "minLength",
  "minimum",
  "maximum",
  "properties",
  "required",
  "additionalProperties",
  "items",
]);

function typeOf(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "array";
  return typeof x;
}

function hasType(x: unknown, t: string): boolean {
  switch (t) {
    case "integer":
      return typeof x === "number" && Number.isInteger(x);
    case "number":
      return typeof x === "number" && Number.isFinite(x);
    default:
      return typeOf(x) === t;
  }
}

/** The problems of `x` against `schema` (empty: valid). Unknown keywords are an error, not ignored. */
function jsonSchemaErrors(schema: Schema, x: unknown, at = "$"): string[] {
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) return [`${at}: schema keyword ${k} is not supported by this validator`];
  const errs: string[] = [];
  if ("type" in schema) {
    const types = [schema.type].flat() as string[];
    if (!types.some((t) => hasType(x, t))) return [`${at}: ${JSON.stringify(x)} is not ${types.join("|")}`];
  }
  if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(x)) errs.push(`${at}: not ${JSON.stringify(schema.const)}`);
  if ("enum" in schema && !(schema.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(x))) errs.push(`${at}: not one of ${JSON.stringify(schema.enum)}`);
  if ("anyOf" in schema && !(schema.anyOf as Schema[]).some((s) => jsonSchemaErrors(s, x, at).length === 0)) errs.push(`${at}: matches no anyOf branch`);
  if ("oneOf" in schema) {
    const matching = (schema.oneOf as Schema[]).filter((s) => jsonSchemaErrors(s, x, at).length === 0).length;
    if (matching !== 1) errs.push(`${at}: matches ${matching} oneOf branches, not exactly one`);
  }
  if (typeof x === "string") {
    if ("pattern" in schema && !new RegExp(schema.pattern as string, "u").test(x)) errs.push(`${at}: does not match ${schema.pattern}`);
    if ("minLength" in schema && [...x].length < (schema.minLength as number)) errs.push(`${at}: shorter than ${schema.minLength}`);
  }
  if (typeof x === "number") {
    if ("minimum" in schema && x < (schema.minimum as number)) errs.push(`${at}: below ${schema.minimum}`);
    if ("maximum" in schema && x > (schema.maximum as number)) errs.push(`${at}: above ${schema.maximum}`);
  }
  if (typeOf(x) === "object") {
    const obj = x as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) errs.push(`${at}: ${r} is missing`);
    for (const [k, val] of Object.entries(obj)) {
      if (k in props) errs.push(...jsonSchemaErrors(props[k]!, val, `${at}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}: ${k} is not allowed`);
      else if (typeof schema.additionalProperties === "object") errs.push(...jsonSchemaErrors(schema.additionalProperties as Schema, val, `${at}.${k}`));
    }
  }
  if (Array.isArray(x) && "items" in schema) x.forEach((item, i) => errs.push(...jsonSchemaErrors(schema.items as Schema, item, `${at}[${i}]`)));
  return errs;
}

let jsonSchema: Schema;

beforeAll(async () => {
  const r = await proxywall(["schema"]);
  expect(r.code).toBe(0);
  jsonSchema = JSON.parse(r.stdout) as Schema;
});

/** Splits stdout into its lines, checking that each is a whole line of valid JSON of both schemas. */
function eventLines(stdout: string): Record<string, unknown>[] {
  if (stdout === "") return [];
  expect(stdout.endsWith("\n")).toBe(true);
  const lines = stdout.slice(0, -1).split("\n");
  return lines.map((line) => {
    expect(line.startsWith("{") && line.endsWith("}")).toBe(true);
    const doc = JSON.parse(line) as Record<string, unknown>;
    v.parse(EventLine, doc);
    expect(jsonSchemaErrors(jsonSchema, doc)).toEqual([]);
    expect(doc.event).toBe("bypass_detect");
    return doc;
  });
}

const summary = (e: Record<string, unknown>) => [e.sandbox, e.proto, e.family, e.src_addr, e.dst_addr, e.dst_port, e.uid, e.out_if, e.log_time];

const FIXTURE_EVENTS = [
  ["abcd1234", "udp", "ipv4", "10.210.0.2", "10.210.0.1", 53, 0, "vs-cap", "1180.427454"],
  ["abcd1234", "tcp", "ipv6", "fd00:210::2", "fd00:210::1", 443, 0, "vs-cap", "1180.545331"],
  ["abcd1234", "tcp", "ipv6", "fd00:210::2", "fd00:210::1", 443, 0, "vs-cap", "1181.561056"],
  ["abcd1234", "udp", "ipv6", "fd00:210::2", "2001:4860:4860::8888", 53, 0, "vs-cap", "1182.680216"],
  ["abcd1234", "tcp", "ipv4", "10.210.0.2", "198.51.100.7", 443, 65534, "vs-cap", "1316.057048"],
];

describe("the JSON Schema validator of this test", () => {
  test("accepts real lines and rejects broken ones", async () => {
    const r = await proxywall(["parse", KMSG]);
    const good = eventLines(r.stdout)[0]!;
    expect(jsonSchemaErrors(jsonSchema, good)).toEqual([]);
    const { uid: _uid, ...missing } = good;
    for (const bad of [
      missing,
      { ...good, extra: 1 },
      { ...good, dst_port: 65536 },
      { ...good, dst_port: 1.5 },
      { ...good, proto: "smtp" },
      { ...good, uid: "0" },
      { ...good, ts: "yesterday" },
      { ...good, sandbox: "" },
      { ...good, event: "no_such_event" },
      { ...good, v: 2 },
    ]) {
      expect(jsonSchemaErrors(jsonSchema, bad).length).toBeGreaterThan(0);
      expect(v.safeParse(EventLine, bad).success).toBe(false);
    }
  });
});

describe("proxywall parse", () => {
  for (const [name, file] of [
    ["kmsg-records.txt", KMSG],
    ["dmesg-lines.txt", DMESG],
  ] as const) {
    test(`${name}: one valid line per proxywall record`, async () => {
      const r = await proxywall(["parse", file]);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      const events = eventLines(r.stdout);
      expect(events.map(summary)).toEqual(FIXTURE_EVENTS);
      expect(events.map((e) => e.hint)).toEqual([HINTS.dnsUdp, HINTS.tcp, HINTS.tcp, HINTS.dnsUdp, HINTS.tcp]);
      for (const e of events) expect(e).toMatchObject({ source: "parse", action: "reject", process: null });
    });
  }

  test("standard input, as - and as no argument at all", async () => {
    const text = readFileSync(DMESG, "utf8");
    for (const args of [["parse", "-"], ["parse"]]) {
      const r = await proxywall(args, text);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      expect(eventLines(r.stdout).map(summary)).toEqual(FIXTURE_EVENTS);
    }
  });

  test("both fixtures through one stdin, mixed formats", async () => {
    const text = readFileSync(KMSG, "utf8") + readFileSync(DMESG, "utf8");
    const r = await proxywall(["parse", "-", "--stats"], text);
    expect(r.code).toBe(0);
    expect(eventLines(r.stdout).map(summary)).toEqual([...FIXTURE_EVENTS, ...FIXTURE_EVENTS]);
  });

  test("--prefix with the 34-character prefix matches the record iptables truncated to 29", async () => {
    for (const file of [KMSG, DMESG]) {
      for (const args of [["--prefix", LONG_PREFIX], [`--prefix=${LONG_PREFIX}`]]) {
        const r = await proxywall(["parse", file, ...args]);
        expect(r).toMatchObject({ code: 0, stderr: "" });
        const events = eventLines(r.stdout);
        expect(events.map(summary)).toEqual([
          ["openshell:bypass:sandbox-abcd1234", "tcp", "ipv4", "10.210.0.2", "198.51.100.7", 443, 65534, "vs-cap", "1316.057059"],
        ]);
      }
    }
  });

  test("--prefix of this sandbox, of another sandbox", async () => {
    const mine = await proxywall(["parse", KMSG, "--prefix", "proxywall:abcd1234:"]);
    expect(eventLines(mine.stdout).map(summary)).toEqual(FIXTURE_EVENTS);
    const other = await proxywall(["parse", KMSG, "--prefix", "proxywall:deadbeef:"]);
    expect(other).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("--stats: counts on stderr at the end, stdout only JSON lines", async () => {
    const r = await proxywall(["parse", DMESG, "--stats"]);
    expect(r.code).toBe(0);
    expect(eventLines(r.stdout)).toHaveLength(5);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const m = /^proxywall: parse stats (\{.*\})$/.exec(lines[0]!);
    expect(m).not.toBeNull();
    expect(JSON.parse(m![1]!)).toEqual({ lines: 6, records: 5, events: 5, skipped_incomplete: 0, skipped_other_proto: 0, oversize_lines: 0 });
  });

  test("--stats counts skipped records (no DST, no DPT, ICMP) and oversize lines", async () => {
    const text = [
      "[ 1.0] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 LEN=60 PROTO=TCP SPT=1 DPT=443",
      "[ 1.1] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 PROTO=UDP SPT=1",
      "[ 1.2] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=84 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1",
      "x".repeat(1024 * 1024),
      "[ 1.3] proxywall:abcd1234:IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 PROTO=TCP SPT=1 DPT=22",
      "",
    ].join("\n");
    const r = await proxywall(["parse", "--stats", "-"], text);
    expect(r.code).toBe(0);
    expect(eventLines(r.stdout).map((e) => e.dst_port)).toEqual([22]);
    // the oversize line is counted as such, not among the lines read
    expect(JSON.parse(/parse stats (\{.*\})/.exec(r.stderr)![1]!)).toEqual({
      lines: 4,
      records: 4,
      events: 1,
      skipped_incomplete: 2,
      skipped_other_proto: 1,
      oversize_lines: 1,
    });
  });

  test("--proxy: TCP to the proxy host on another port gets the wrong-port hint", async () => {
    const line = (dst: string, dpt: number) =>
      `[ 1.0] proxywall:abcd1234:IN= OUT=vs-cap SRC=fd00:0210:0000:0000:0000:0000:0000:0002 DST=${dst} LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=TCP SPT=40000 DPT=${dpt} UID=0 GID=0\n`;
    const text = line("fd00:0210:0000:0000:0000:0000:0000:0001", 8080) + line("fd00:0210:0000:0000:0000:0000:0000:0001", 3128) + line("2001:4860:4860:0000:0000:0000:0000:8888", 8080);
    const r = await proxywall(["parse", "--proxy", "[fd00:210::1]:3128"], text);
    expect(r.code).toBe(0);
    expect(eventLines(r.stdout).map((e) => e.hint)).toEqual([HINTS.wrongProxyPort, HINTS.tcp, HINTS.tcp]);
    const v4 = await proxywall(["parse", KMSG, "--proxy", "198.51.100.7:3128"]);
    expect(eventLines(v4.stdout).map((e) => e.hint)).toEqual([HINTS.dnsUdp, HINTS.tcp, HINTS.tcp, HINTS.dnsUdp, HINTS.wrongProxyPort]);
  });

  test("many events in a large stream: every stdout line whole, in order", async () => {
    const base = readFileSync(KMSG, "utf8").split("\n")[4]!; // TCP to 198.51.100.7, uid 65534
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      lines.push(base.replace("SPT=51922", `SPT=${10000 + i}`));
      lines.push(`6,${i},${i},-;usb 1-1: some unrelated message number ${i}`);
      if (i % 500 === 0) lines.push("\u0000\u00ff garbage " + "g".repeat(70000));
    }
    const r = await proxywall(["parse", "-"], lines.join("\r\n") + "\r\n");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const events = eventLines(r.stdout);
    expect(events.map((e) => e.src_port)).toEqual(Array.from({ length: 3000 }, (_, i) => 10000 + i));
  });

  test("empty input: nothing out, exit 0", async () => {
    expect(await proxywall(["parse", "-"], "")).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("/dev/null as the file and as standard input: nothing out, exit 0", async () => {
    // Bun's file stream polled the descriptor with epoll, which refuses /dev/null (EPERM).
    expect(await proxywall(["parse", "/dev/null"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await proxywall(["parse", "-"])).toEqual({ code: 0, stdout: "", stderr: "" }); // stdin: /dev/null
    const r = await proxywall(["parse", "/dev/null", "--stats"]);
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(r.stderr).toContain(`"lines":0,"records":0,"events":0`);
  });

  test("a regular file as standard input", async () => {
    const p = Bun.spawn([process.execPath, "src/main.ts", "parse"], { cwd: ROOT, stdin: Bun.file(KMSG), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(eventLines(stdout).map(summary)).toEqual(FIXTURE_EVENTS);
  });

  test("a byte-order mark, CRLF, invalid UTF-8 and characters cut by chunk ends change nothing", async () => {
    const text = readFileSync(DMESG, "utf8").replaceAll("\n", "\r\n");
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`\u00e9\u20ac\ud83d\ude00 \xff\n`, "utf8"), Buffer.from([0xc3, 0x0a, 0xe2, 0x82, 0x0a]), Buffer.from(text)]);
    // more than one 64 KiB read, with multi-byte characters across every read boundary
    const filler = Buffer.from(`[ 1.0] caf\u00e9 \u20ac\ud83d\ude00 ${"x".repeat(97)}\n`, "utf8");
    const input = Buffer.concat([bytes, ...Array.from({ length: 2000 }, () => filler), bytes]);
    const r = await proxywall(["parse", "-", "--stats"], input);
    expect(r.code).toBe(0);
    expect(eventLines(r.stdout).map(summary)).toEqual([...FIXTURE_EVENTS, ...FIXTURE_EVENTS]);
    const stats = JSON.parse(/parse stats (\{.*\})/.exec(r.stderr)![1]!);
    expect(stats).toMatchObject({ lines: 2 * (3 + 6) + 2000, events: 10, oversize_lines: 0 });
  });
});

describe("proxywall parse: usage errors", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "pw-parse-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const usage = (r: Result) => {
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.endsWith("\n")).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr.startsWith("proxywall: ")).toBe(true);
    return r.stderr;
  };

  test("a missing file: exit 2, one line on stderr, nothing on stdout", async () => {
    const missing = path.join(dir, "no-such-file.log");
    expect(usage(await proxywall(["parse", missing]))).toContain(missing);
  });

  test("a directory is not a log file, and the message says so", async () => {
    expect(usage(await proxywall(["parse", dir]))).toBe(`proxywall: cannot read ${dir}: is a directory\n`);
    expect(usage(await proxywall(["parse", "/tmp"]))).toContain("is a directory");
  });

  test("an unknown flag: exit 2", async () => {
    const file = path.join(dir, "k.log");
    writeFileSync(file, readFileSync(KMSG));
    expect(usage(await proxywall(["parse", file, "--no-such-flag"]))).toContain("--no-such-flag");
    usage(await proxywall(["parse", "--follow", file]));
  });

  test("bad option values: exit 2", async () => {
    usage(await proxywall(["parse", KMSG, "--prefix", ""]));
    usage(await proxywall(["parse", KMSG, "--proxy", "10.0.0.1"]));
    usage(await proxywall(["parse", KMSG, "--proxy", "10.0.0.1:0"]));
    usage(await proxywall(["parse", KMSG, "--proxy", "999.0.0.1:3128"]));
    usage(await proxywall(["parse", KMSG, "--prefix"]));
  });
});
