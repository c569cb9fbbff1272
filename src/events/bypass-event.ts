// Builds the bypass_detect line from decoded packet fields, whichever source decoded them.
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { bypassHint, HINTS, PROGRAM_HINTS } from "./hints.ts";
import type { LineEncoder } from "./line-writer.ts";
import { REASON_BYPASS, type BypassDetect, type ProcessInfo, type Source } from "./schema.ts";

export interface BypassContext {
  sandbox: string;
  source: Source;
  proxy?: { addrs: readonly string[]; port: number } | undefined;
}

let lastMs = -1;
let lastTs = "";

/** The time now as RFC 3339 UTC with milliseconds; formatted once per millisecond. */
export function nowTs(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastTs = new Date(ms).toISOString();
  }
  return lastTs;
}

/** The line for a packet; the hint is chosen from `process` when attribution named it. */
export function bypassEvent(ctx: BypassContext, f: PacketFields, logTime: string | null, process: ProcessInfo = null): BypassDetect {
  return {
    v: 1,
    event: "bypass_detect",
    ts: nowTs(),
    sandbox: ctx.sandbox,
    action: "reject",
    proto: f.proto,
    family: f.family,
    src_addr: f.srcAddr,
    src_port: f.srcPort,
    dst_addr: f.dstAddr,
    dst_port: f.dstPort,
    uid: f.uid,
    gid: f.gid,
    out_if: f.outIf,
    process,
    dns_query: null,
    reason: REASON_BYPASS,
    hint: bypassHint({ proto: f.proto, dstAddr: f.dstAddr, dstPort: f.dstPort, proxy: ctx.proxy, process }),
    source: ctx.source,
    log_time: logTime,
  };
}

// ---- bulk JSON output -----------------------------------------------------------------------
// `parse` writes a line per record, so its events go straight to bytes: exactly the UTF-8 of
// JSON.stringify(event), without building the line as a string first (tests compare the two).

// The keys in the order bypassEvent (hence JSON.stringify) has them, which encode() follows; tsc
// fails here when the schema gains or loses one.
const KEYS = [
  "v", "event", "ts", "sandbox", "action", "proto", "family", "src_addr", "src_port", "dst_addr", "dst_port",
  "uid", "gid", "out_if", "process", "dns_query", "dns_type", "reason", "hint", "source", "log_time",
] as const;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _keysInStep: Same<keyof BypassDetect, (typeof KEYS)[number]> = true;
void _keysInStep;

const utf8 = new TextEncoder();
const bytes = (text: string) => utf8.encode(text);
/** Each key as JSON with the punctuation before it: `{"v":`, `,"event":`, ... */
const K = Object.fromEntries(KEYS.map((k, i) => [k, bytes(`${i === 0 ? "{" : ","}${JSON.stringify(k)}:`)])) as Record<
  (typeof KEYS)[number],
  Uint8Array
>;
const KEY_BYTES = Object.values(K).reduce((n, k) => n + k.length, 0) + 1; // + "}"
// The long fixed texts, ready as JSON.
const TEXT_BYTES = new Map<string, Uint8Array>(
  [...Object.values(HINTS), ...Object.values(PROGRAM_HINTS).flatMap((h) => [h.tcp, h.dns]), REASON_BYPASS].map((h) => [h, bytes(JSON.stringify(h))]),
);
const NULL = bytes("null");

function put(buf: Uint8Array, at: number, part: Uint8Array): number {
  if (part.length > 32) {
    buf.set(part, at);
    return at + part.length;
  }
  for (let i = 0; i < part.length; i++) buf[at + i] = part[i]!;
  return at + part.length;
}

/** JSON of any value, through JSON.stringify (the rare cases). */
function putJson(buf: Uint8Array, at: number, value: unknown): number {
  return at + utf8.encodeInto(JSON.stringify(value), buf.subarray(at)).written;
}

/** JSON string: printable ASCII as is; anything else (escapes, non-ASCII) through JSON.stringify. */
function putString(buf: Uint8Array, at: number, s: string | null): number {
  if (s === null) return put(buf, at, NULL);
  const start = at;
  buf[at++] = 34;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c > 126 || c === 34 || c === 92) return putJson(buf, start, s);
    buf[at++] = c;
  }
  buf[at++] = 34;
  return at;
}

/** A string that is often one of the fixed texts (hints, reason). */
function putText(buf: Uint8Array, at: number, s: string): number {
  const known = TEXT_BYTES.get(s);
  return known ? put(buf, at, known) : putString(buf, at, s);
}

function putNumber(buf: Uint8Array, at: number, n: number | null): number {
  if (n === null) return put(buf, at, NULL);
  if (!(Number.isInteger(n) && n >= 0 && n <= 4294967295)) return putJson(buf, at, n);
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let i = at + digits - 1, t = n; i >= at; i--, t = Math.floor(t / 10)) buf[i] = 48 + (t % 10);
  return at + digits;
}

/** Worst case of putString: \uXXXX (6 bytes) per UTF-16 unit, plus the quotes. */
const stringBound = (s: string | null) => (s === null ? 4 : s.length * 6 + 2);
/** Worst case of putNumber: the longest JSON number text ("-1.7976931348623157e+308"). */
const NUMBER_BOUND = 24;

/** A bypass_detect event as its JSON line (see LineWriter.writeEncoded). */
export const bypassEventLine: LineEncoder<BypassDetect> = {
  maxBytes(e) {
    return (
      KEY_BYTES +
      6 * NUMBER_BOUND +
      stringBound(e.event) + stringBound(e.ts) + stringBound(e.sandbox) + stringBound(e.action) + stringBound(e.proto) +
      stringBound(e.family) + stringBound(e.src_addr) + stringBound(e.dst_addr) + stringBound(e.out_if) +
      stringBound(e.dns_query) + stringBound(e.dns_type ?? null) + stringBound(e.reason) + stringBound(e.hint) + stringBound(e.source) + stringBound(e.log_time) +
      // JSON.stringify escapes lone surrogates, so 3 bytes per UTF-16 unit bound its UTF-8
      (e.process === null ? 4 : JSON.stringify(e.process).length * 3)
    );
  },
  encode(e, buf, at) {
    at = putNumber(buf, put(buf, at, K.v), e.v);
    at = putString(buf, put(buf, at, K.event), e.event);
    at = putString(buf, put(buf, at, K.ts), e.ts);
    at = putString(buf, put(buf, at, K.sandbox), e.sandbox);
    at = putString(buf, put(buf, at, K.action), e.action);
    at = putString(buf, put(buf, at, K.proto), e.proto);
    at = putString(buf, put(buf, at, K.family), e.family);
    at = putString(buf, put(buf, at, K.src_addr), e.src_addr);
    at = putNumber(buf, put(buf, at, K.src_port), e.src_port);
    at = putString(buf, put(buf, at, K.dst_addr), e.dst_addr);
    at = putNumber(buf, put(buf, at, K.dst_port), e.dst_port);
    at = putNumber(buf, put(buf, at, K.uid), e.uid);
    at = putNumber(buf, put(buf, at, K.gid), e.gid);
    at = putString(buf, put(buf, at, K.out_if), e.out_if);
    // Attribution (nfqueue) only: parse never has a process.
    at = put(buf, at, K.process);
    at = e.process === null ? put(buf, at, NULL) : putJson(buf, at, e.process);
    at = putString(buf, put(buf, at, K.dns_query), e.dns_query);
    // Only where a source sets it (the kernel log never shows a query): as JSON.stringify does.
    if (e.dns_type !== undefined) at = putString(buf, put(buf, at, K.dns_type), e.dns_type);
    at = putText(buf, put(buf, at, K.reason), e.reason);
    at = putText(buf, put(buf, at, K.hint), e.hint);
    at = putString(buf, put(buf, at, K.source), e.source);
    at = putString(buf, put(buf, at, K.log_time), e.log_time);
    buf[at] = 125; // }
    return at + 1;
  },
};
