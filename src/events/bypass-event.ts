// Builds the bypass_detect line from decoded packet fields, whichever source decoded them.
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { bypassHint, HINTS } from "./hints.ts";
import type { LineEncoder } from "./line-writer.ts";
import { REASON_BYPASS, type BypassDetect, type Source } from "./schema.ts";

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

export function bypassEvent(ctx: BypassContext, f: PacketFields, logTime: string | null): BypassDetect {
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
    process: null,
    dns_query: null,
    reason: REASON_BYPASS,
    hint: bypassHint({ proto: f.proto, dstAddr: f.dstAddr, dstPort: f.dstPort, proxy: ctx.proxy }),
    source: ctx.source,
    log_time: logTime,
  };
}

// ---- bulk JSON output -----------------------------------------------------------------------
// `parse` writes a line per record, so its events go straight to bytes: exactly the UTF-8 of
// JSON.stringify(event), without building the line as a string first (tests compare the two).

// The keys written below, in this order; tsc fails here when the schema gains or loses one.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _keysInStep: Same<
  keyof BypassDetect,
  | "v" | "event" | "ts" | "sandbox" | "action" | "proto" | "family" | "src_addr" | "src_port" | "dst_addr"
  | "dst_port" | "uid" | "gid" | "out_if" | "process" | "dns_query" | "reason" | "hint" | "source" | "log_time"
> = true;
void _keysInStep;

const utf8 = new TextEncoder();
const bytes = (text: string) => utf8.encode(text);
const K_TS = bytes(`{"v":1,"event":"bypass_detect","ts":`);
const K_SANDBOX = bytes(`,"sandbox":`);
const K_PROTO = bytes(`,"action":"reject","proto":`);
const K_FAMILY = bytes(`,"family":`);
const K_SRC_ADDR = bytes(`,"src_addr":`);
const K_SRC_PORT = bytes(`,"src_port":`);
const K_DST_ADDR = bytes(`,"dst_addr":`);
const K_DST_PORT = bytes(`,"dst_port":`);
const K_UID = bytes(`,"uid":`);
const K_GID = bytes(`,"gid":`);
const K_OUT_IF = bytes(`,"out_if":`);
const K_PROCESS = bytes(`,"process":`);
const K_DNS_QUERY = bytes(`,"dns_query":`);
const K_HINT = bytes(`,"reason":${JSON.stringify(REASON_BYPASS)},"hint":`);
const K_SOURCE = bytes(`,"source":`);
const K_LOG_TIME = bytes(`,"log_time":`);
const K_END = bytes(`}`);
const FIXED_BYTES = [K_TS, K_SANDBOX, K_PROTO, K_FAMILY, K_SRC_ADDR, K_SRC_PORT, K_DST_ADDR, K_DST_PORT, K_UID, K_GID, K_OUT_IF, K_PROCESS, K_DNS_QUERY, K_HINT, K_SOURCE, K_LOG_TIME, K_END].reduce((n, k) => n + k.length, 0);
const HINT_BYTES = new Map<string, Uint8Array>(Object.values(HINTS).map((h) => [h, bytes(JSON.stringify(h))]));
const NULL = bytes("null");

function put(buf: Uint8Array, at: number, part: Uint8Array): number {
  if (part.length > 32) {
    buf.set(part, at);
    return at + part.length;
  }
  for (let i = 0; i < part.length; i++) buf[at + i] = part[i]!;
  return at + part.length;
}

/** JSON string: printable ASCII as is; anything else (escapes, non-ASCII) through JSON.stringify. */
function putString(buf: Uint8Array, at: number, s: string | null): number {
  if (s === null) return put(buf, at, NULL);
  const start = at;
  buf[at++] = 34;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c > 126 || c === 34 || c === 92) {
      return start + utf8.encodeInto(JSON.stringify(s), buf.subarray(start)).written;
    }
    buf[at++] = c;
  }
  buf[at++] = 34;
  return at;
}

function putNumber(buf: Uint8Array, at: number, n: number | null): number {
  if (n === null) return put(buf, at, NULL);
  if (!(Number.isInteger(n) && n >= 0 && n <= 4294967295)) return at + utf8.encodeInto(JSON.stringify(n), buf.subarray(at)).written;
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
    const hint = HINT_BYTES.get(e.hint);
    return (
      FIXED_BYTES +
      5 * NUMBER_BOUND +
      stringBound(e.ts) + stringBound(e.sandbox) + stringBound(e.proto) + stringBound(e.family) +
      stringBound(e.src_addr) + stringBound(e.dst_addr) + stringBound(e.out_if) + stringBound(e.source) +
      stringBound(e.log_time) + stringBound(e.dns_query) + (hint ? hint.length : stringBound(e.hint)) +
      (e.process === null ? 4 : JSON.stringify(e.process).length * 3)
    );
  },
  encode(e, buf, at) {
    at = put(buf, at, K_TS);
    at = putString(buf, at, e.ts);
    at = put(buf, at, K_SANDBOX);
    at = putString(buf, at, e.sandbox);
    at = put(buf, at, K_PROTO);
    at = putString(buf, at, e.proto);
    at = put(buf, at, K_FAMILY);
    at = putString(buf, at, e.family);
    at = put(buf, at, K_SRC_ADDR);
    at = putString(buf, at, e.src_addr);
    at = put(buf, at, K_SRC_PORT);
    at = putNumber(buf, at, e.src_port);
    at = put(buf, at, K_DST_ADDR);
    at = putString(buf, at, e.dst_addr);
    at = put(buf, at, K_DST_PORT);
    at = putNumber(buf, at, e.dst_port);
    at = put(buf, at, K_UID);
    at = putNumber(buf, at, e.uid);
    at = put(buf, at, K_GID);
    at = putNumber(buf, at, e.gid);
    at = put(buf, at, K_OUT_IF);
    at = putString(buf, at, e.out_if);
    at = put(buf, at, K_PROCESS);
    // Attribution (nfqueue) only: parse never has a process.
    at = e.process === null ? put(buf, at, NULL) : at + utf8.encodeInto(JSON.stringify(e.process), buf.subarray(at)).written;
    at = put(buf, at, K_DNS_QUERY);
    at = putString(buf, at, e.dns_query);
    at = put(buf, at, K_HINT);
    const hint = HINT_BYTES.get(e.hint);
    at = hint ? put(buf, at, hint) : putString(buf, at, e.hint);
    at = put(buf, at, K_SOURCE);
    at = putString(buf, at, e.source);
    at = put(buf, at, K_LOG_TIME);
    at = putString(buf, at, e.log_time);
    return put(buf, at, K_END);
  },
};
