// Host text as a client sends it (CONNECT authority, absolute-URI host) -> a canonical IP address or
// a lower-case name, and IP addresses as numbers for range checks.
//
// Numeric hosts follow the WHATWG URL host parser, the reference for http URLs, which reads IPv4 the
// way inet_aton(3) does (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`, a trailing dot) and refuses
// what neither should guess at (`08.0.0.1`, `1.2.3.4.5`, `4294967296`). It is built into the runtime
// (`new URL`), so it is used as it is rather than re-implemented: ipaddr.js, the other candidate,
// refuses `127.0.0.1.` and `0x`, and reads the IPv4-compatible `::127.0.0.1` as `::ffff:127.0.0.1`.
import { formatIPv6, intToIPv4, isIPv4 } from "../net/ip-address.ts";

export type NormalisedHost = { addr: string } | { name: string } | { error: string };

/** A parsed IP address: IPv4 as one unsigned 32-bit number, IPv6 as four (most significant first). */
export type IP = { v: 4; n: number } | { v: 6; w: readonly [number, number, number, number] };

const MAX_NAME = 253;
/** What may go to the URL parser: letters, digits, ".", "-", "_", and non-ASCII (IDN) text. */
const URL_SAFE = /^[A-Za-z0-9._\-\u0080-\u{10ffff}]+$/u;
/** The WHATWG "ends in a number" test: the last label (a trailing dot aside) is digits or 0x-hex. */
const NUMERIC_LAST_LABEL = /(?:^|\.)(?:\d+|0[xX][0-9a-fA-F]*)\.?$/;

/**
 * The common host, decided with one regular expression: lower-case ASCII letters, digits, "-" and
 * "_" in labels of 1-63 characters (one trailing dot allowed) whose last label is not numeric in
 * the WHATWG sense (all digits, or 0x and hex digits: those make the host an IPv4 address). This
 * runs for every request, and proxywall runs without JavaScriptCore's optimizing tiers, where a
 * loop over characters costs about 20 ns a character: a regular expression is compiled to machine
 * code either way. Everything else (upper case, IDN, numeric spellings, bad labels) goes the long way.
 */
const PLAIN_NAME = /^(?:[a-z0-9_-]{1,63}\.)*(?![0-9]*\.?$|0x[0-9a-f]*\.?$)[a-z0-9_-]{1,63}\.?$/;

/** The name when the host is the common case (PLAIN_NAME, at most MAX_NAME long), else null: normaliseHost decides. */
export function plainName(host: string): string | null {
  if (host.length > MAX_NAME + 1 || !PLAIN_NAME.test(host)) return null;
  const name = host.charCodeAt(host.length - 1) === 46 ? host.slice(0, -1) : host;
  return name.length <= MAX_NAME ? name : null;
}

function fromIPv6Text(text: string): NormalisedHost {
  if (!parseIPv6Groups(text, SCRATCH)) return { error: `${text} is not an IPv6 address` };
  const g = SCRATCH;
  return { addr: formatIPv6([g[0]!, g[1]!, g[2]!, g[3]!, g[4]!, g[5]!, g[6]!, g[7]!]) };
}

function checkLabels(name: string): string | null {
  if (name.length === 0) return "empty host";
  if (name.length > MAX_NAME) return `host name longer than ${MAX_NAME} characters`;
  for (const label of name.split(".")) {
    if (label.length === 0) return `empty label in ${name}`;
    if (label.length > 63) return `label longer than 63 characters in ${name}`;
  }
  return null;
}

/**
 * Numeric spellings -> canonical IP (dotted quad, RFC 5952 IPv6); names -> lower case, IDN as
 * punycode, trailing dot removed; anything else (other characters, empty labels, a numeric host the
 * URL parser refuses) -> error. IPv6 may come with or without brackets; a zone id is refused.
 */
export function normaliseHost(host: string): NormalisedHost {
  const plain = plainName(host);
  return plain !== null ? { name: plain } : normaliseOther(host);
}

/** normaliseHost for a host plainName did not take (decideTarget asks plainName itself first). */
export function normaliseOther(host: string): NormalisedHost {
  if (host.length > MAX_NAME + 2) return { error: `host longer than ${MAX_NAME} characters` };
  if (host.length === 0) return { error: "empty host" };
  if (host.charCodeAt(0) === 91 /* [ */) {
    if (!host.endsWith("]")) return { error: `${host}: unbalanced [` };
    return fromIPv6Text(host.slice(1, -1));
  }
  if (host.includes(":")) return fromIPv6Text(host);
  if (parseDottedQuad(host) >= 0) return { addr: host };
  if (!URL_SAFE.test(host)) {
    return { error: `${JSON.stringify(host)} is not a host name or address` };
  }
  let hostname: string;
  try {
    hostname = new URL(`http://${host}/`).hostname;
  } catch {
    return { error: NUMERIC_LAST_LABEL.test(host) ? `${host} is not a valid IPv4 address` : `${JSON.stringify(host)} is not a host name or address` };
  }
  if (hostname.startsWith("[")) return fromIPv6Text(hostname.slice(1, -1));
  if (isIPv4(hostname)) return { addr: hostname };
  const name = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
  const bad = checkLabels(name);
  return bad ? { error: bad } : { name };
}

/** A fast parse of a dotted quad (as `isIPv4` accepts it) to a number, or -1. */
function parseDottedQuad(text: string): number {
  const len = text.length;
  if (len < 7 || len > 15) return -1;
  let n = 0;
  let part = -1;
  let dots = 0;
  for (let i = 0; i < len; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d >= 0 && d <= 9) {
      if (part === 0) return -1; // a leading zero
      part = part < 0 ? d : part * 10 + d;
      if (part > 255) return -1;
    } else if (d === -2 /* . */ && part >= 0 && dots < 3) {
      n = n * 256 + part;
      part = -1;
      dots++;
    } else return -1;
  }
  return dots === 3 && part >= 0 ? n * 256 + part : -1;
}

/** Canonical (or any valid) IP text -> numbers, or null when it is not an address. */
export function parseIP(text: string): IP | null {
  const n = parseDottedQuad(text);
  if (n >= 0) return { v: 4, n };
  if (!parseIPv6Groups(text, SCRATCH)) return null;
  const g = SCRATCH;
  return { v: 6, w: [((g[0]! << 16) | g[1]!) >>> 0, ((g[2]! << 16) | g[3]!) >>> 0, ((g[4]! << 16) | g[5]!) >>> 0, ((g[6]! << 16) | g[7]!) >>> 0] };
}

const SCRATCH = new Uint16Array(8);
/** ASCII code -> hex digit value, or -1. */
const HEX = Int8Array.from({ length: 128 }, (_, c) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1));

/**
 * IPv6 text (full, "::"-compressed, with a dotted IPv4 tail; no brackets, no zone) -> eight groups
 * in `out`; false when it is not one. One pass, no allocation: this runs for every resolved address.
 */
function parseIPv6Groups(text: string, out: Uint16Array): boolean {
  const len = text.length;
  if (len < 2 || len > 45) return false;
  let count = 0;
  let gap = -1; // the group index where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    let value = 0;
    let digits = 0;
    const start = i;
    while (i < len) {
      const c = text.charCodeAt(i);
      const h = c < 128 ? HEX[c]! : -1;
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < len && text.charCodeAt(i) === 46) {
      // A dotted IPv4 tail: the last two groups.
      const v4 = parseDottedQuad(text.slice(start));
      if (v4 < 0 || count > 6) return false;
      out[count++] = v4 >>> 16;
      out[count++] = v4 & 0xffff;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return false;
    out[count++] = value;
    if (i === len) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < len && text.charCodeAt(i) === 58) {
      if (gap !== -1) return false;
      gap = count;
      i++;
    } else if (i === len) return false; // a trailing single ":"
  }
  if (gap === -1) return count === 8;
  if (count > 7) return false;
  // Move the groups after "::" to the end and zero the gap.
  const move = count - gap;
  for (let k = 0; k < move; k++) out[7 - k] = out[count - 1 - k]!;
  for (let k = gap; k < 8 - move; k++) out[k] = 0;
  return true;
}

export function formatIP(ip: IP): string {
  if (ip.v === 4) return intToIPv4(ip.n);
  const g: number[] = [];
  for (const w of ip.w) g.push(w >>> 16, w & 0xffff);
  return formatIPv6(g);
}

/** Why an IPv6 address stands for an IPv4 one, and which. */
export interface Carried {
  form: "IPv4-mapped" | "IPv4-compatible" | "IPv4-translated" | "NAT64";
  v4: number;
}

/**
 * The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:0:0/96`, IPv4-translated
 * `::ffff:0:0:0/96` (SIIT), IPv4-compatible `::/96` (but `::` and `::1`), NAT64 `64:ff9b::/96`
 * (RFC 6052) and the local-use NAT64 `64:ff9b:1::/48` with the address in the last 32 bits (its
 * /96 form, RFC 8215). A connection to any of them may reach that IPv4 address.
 */
export function carriedIPv4(w: readonly [number, number, number, number]): Carried | null {
  const form = carriedForm(w[0], w[1], w[2], w[3]);
  return form === null ? null : { form, v4: w[3] };
}

/** carriedIPv4's form alone (the IPv4 address is always the last word), from the four words. */
export function carriedForm(a: number, b: number, c: number, d: number): Carried["form"] | null {
  if (a === 0 && b === 0) {
    if (c === 0xffff) return "IPv4-mapped";
    if (c === 0xffff0000) return "IPv4-translated";
    if (c === 0 && d > 1) return "IPv4-compatible";
    return null;
  }
  if (a === 0x0064ff9b && b === 0 && c === 0) return "NAT64";
  if (a === 0x0064ff9b && b >>> 16 === 1) return "NAT64";
  return null;
}

/**
 * What an address is for a decision, flat (no nested objects: one allocation per address): the
 * address itself and, for the IPv6 forms that carry one, the IPv4 address it carries.
 */
export interface AddrFacts {
  /** The address as given (any valid spelling of it); canonical text comes from formatIP(factsIP(f)). */
  text: string;
  v: 4 | 6;
  /** IPv4: the address, unsigned; IPv6: 0. */
  n: number;
  /** IPv6: the four words, unsigned, most significant first; IPv4: 0. */
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  /** The IPv4 address an IPv6 form carries (unsigned), or -1; and that form. */
  c4: number;
  form: Carried["form"] | null;
}

/** IP text (any valid spelling of an address; other numeric spellings via normaliseHost) -> facts, or null. */
export function addrFacts(text: string): AddrFacts | null {
  const f: AddrFacts = { text, v: 4, n: 0, w0: 0, w1: 0, w2: 0, w3: 0, c4: -1, form: null };
  return readAddr(text, f) ? f : null;
}

/**
 * addrFacts into `out` (every field set), without allocating: false when the text is not an
 * address. For callers that decide one address after another and keep none of them.
 */
export function readAddr(text: string, out: AddrFacts): boolean {
  const n = parseDottedQuad(text);
  if (n >= 0) {
    out.text = text;
    out.v = 4;
    out.n = n;
    out.w0 = out.w1 = out.w2 = out.w3 = 0;
    out.c4 = -1;
    out.form = null;
    return true;
  }
  if (parseIPv6Groups(text, SCRATCH)) {
    const g = SCRATCH;
    const w0 = ((g[0]! << 16) | g[1]!) >>> 0;
    const w1 = ((g[2]! << 16) | g[3]!) >>> 0;
    const w2 = ((g[4]! << 16) | g[5]!) >>> 0;
    const w3 = ((g[6]! << 16) | g[7]!) >>> 0;
    const form = carriedForm(w0, w1, w2, w3);
    out.text = text;
    out.v = 6;
    out.n = 0;
    out.w0 = w0;
    out.w1 = w1;
    out.w2 = w2;
    out.w3 = w3;
    out.c4 = form === null ? -1 : w3;
    out.form = form;
    return true;
  }
  const h = normaliseHost(text);
  return "addr" in h && h.addr !== text && readAddr(h.addr, out);
}

/** The address of the facts as an IP (for messages: not on the hot path). */
export function factsIP(f: AddrFacts): IP {
  return f.v === 4 ? { v: 4, n: f.n } : { v: 6, w: [f.w0, f.w1, f.w2, f.w3] };
}

/** A CIDR block, normalised: the address with no bits set beyond the prefix. */
export interface Cidr {
  ip: IP;
  len: number;
}

/** The mask of a prefix length within one 32-bit word that starts at bit `start`. */
export function wordMask(len: number, start: number): number {
  const bits = Math.max(0, Math.min(32, len - start));
  return bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

export function maskIP(ip: IP, len: number): IP {
  if (ip.v === 4) return { v: 4, n: (ip.n & wordMask(len, 0)) >>> 0 };
  return {
    v: 6,
    w: [(ip.w[0] & wordMask(len, 0)) >>> 0, (ip.w[1] & wordMask(len, 32)) >>> 0, (ip.w[2] & wordMask(len, 64)) >>> 0, (ip.w[3] & wordMask(len, 96)) >>> 0],
  };
}

export function sameIP(a: IP, b: IP): boolean {
  if (a.v === 4) return b.v === 4 && a.n === b.n;
  return b.v === 6 && a.w[0] === b.w[0] && a.w[1] === b.w[1] && a.w[2] === b.w[2] && a.w[3] === b.w[3];
}

export function cidrContains(c: Cidr, ip: IP): boolean {
  return c.ip.v === ip.v && sameIP(maskIP(ip, c.len), c.ip);
}

export function formatCidr(c: Cidr): string {
  const max = c.ip.v === 4 ? 32 : 128;
  return c.len === max ? formatIP(c.ip) : `${formatIP(c.ip)}/${c.len}`;
}

/** `ADDR/LEN` or `ADDR` (any spelling normaliseHost accepts for ADDR) -> a CIDR, or an error. */
export function parseCidr(text: string): Cidr | { error: string } {
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const h = normaliseHost(addrText);
  if ("error" in h) return h;
  if ("name" in h) return { error: `${addrText} is not an IP address` };
  const ip = parseIP(h.addr)!;
  const max = ip.v === 4 ? 32 : 128;
  let len = max;
  if (slash !== -1) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) return { error: `${text}: the prefix length must be 0 to ${max}` };
    len = Number(lenText);
  }
  const masked = maskIP(ip, len);
  if (!sameIP(masked, ip)) return { error: `${text} has address bits set beyond /${len} (did you mean ${formatIP(masked)}/${len}?)` };
  return { ip, len };
}

export { intToIPv4 };
