// Request heads for the built-in proxy: where a head ends, what it asks for, and the origin-form
// head that goes upstream for a forwarded (absolute-URI) request. Pure functions on bytes/text.
//
// Heads are handled as latin1 text so that every byte maps to one char and back: header values
// with UTF-8 or other 8-bit bytes reach the destination unchanged.
import { isIPv6 } from "node:net";

/** The largest request head the proxy reads (request line, headers and the blank line). */
export const MAX_HEAD_BYTES = 64 * 1024;

/** A request the proxy refuses with 400; the message is the reason shown to the client. */
export class BadRequest extends Error {
  override name = "BadRequest";
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * The offset just past the blank line that ends a head in `buf`, or -1 when it has not arrived.
 * Lines may end in CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept LF). `from` lets a
 * caller resume a scan: pass the previous length minus 3.
 */
export function findHeadEnd(buf: Uint8Array, from = 0): number {
  for (let i = Math.max(0, from); i < buf.length; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i + 1] === LF) return i + 2;
    if (buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/(1\.[01])$/;
const HEADER_LINE = /^([^:]*):[ \t]*(.*?)[ \t]*$/;
// Control characters other than HTAB may not appear in a field value (obs-text 0x80-0xFF may).
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const REG_NAME = /^[A-Za-z0-9._-]+$/;

export interface HostPort {
  /** Host name or address as the client gave it, an IPv6 address without its brackets. */
  host: string;
  port: number;
}

export type ProxyRequest =
  | ({ kind: "connect"; method: "CONNECT" } & HostPort)
  | ({
      kind: "forward";
      method: string;
      /** The head to send upstream: origin-form request line, hop-by-hop headers dropped, `Connection: close`. */
      upstreamHead: string;
    } & HostPort);

/**
 * `host:port` or `[v6]:port` (authority-form); `defaultPort` applies when no port is given. With
 * no default (CONNECT, whose port is required), an IPv6 address without brackets is read too, the
 * port after its last colon: Python 3.11's http.client writes `CONNECT ::1:443` (fixed in 3.12),
 * and a CONNECT has only that one reading.
 */
export function parseAuthority(text: string, defaultPort?: number): HostPort {
  let host: string;
  let rest: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new BadRequest(`malformed host "${text}": no closing ]`);
    host = text.slice(1, close);
    // A zone id (%eth0) names an interface of proxywall's own: never a destination.
    if (!isIPv6(host) || host.includes("%")) throw new BadRequest(`malformed host "${text}": not an IPv6 address in brackets`);
    rest = text.slice(close + 1);
  } else if (defaultPort === undefined && text.indexOf(":") !== text.lastIndexOf(":")) {
    const colon = text.lastIndexOf(":");
    host = text.slice(0, colon);
    if (!isIPv6(host) || host.includes("%")) throw new BadRequest(`malformed host "${text}": not an IPv6 address and port`);
    rest = text.slice(colon);
  } else {
    const colon = text.indexOf(":");
    if (colon !== text.lastIndexOf(":")) throw new BadRequest(`malformed host "${text}": an IPv6 address must be in brackets`);
    host = colon < 0 ? text : text.slice(0, colon);
    rest = colon < 0 ? "" : text.slice(colon);
    if (host.length === 0 || host.length > 253 || !REG_NAME.test(host)) throw new BadRequest(`malformed host "${text}"`);
  }
  if (rest === "") {
    if (defaultPort === undefined) throw new BadRequest(`"${text}" has no port: CONNECT needs host:port`);
    return { host, port: defaultPort };
  }
  const m = /^:(\d{1,5})$/.exec(rest);
  const port = m ? Number(m[1]) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new BadRequest(`malformed port in "${text}"`);
  return { host, port };
}

/** `host`, `host:port` or `[v6]:port` as it belongs in a Host header (port left out when 80). */
function hostHeader(hp: HostPort): string {
  const h = hp.host.includes(":") ? `[${hp.host}]` : hp.host;
  return hp.port === 80 ? h : `${h}:${hp.port}`;
}

// Connection may not take these away: dropping the framing headers would let a body be read as a
// second request, and Host is what the destination serves.
const NEVER_DROPPED = new Set(["host", "content-length", "transfer-encoding"]);
const HOP_BY_HOP = new Set(["connection", "proxy-connection", "proxy-authorization", "keep-alive"]);

/**
 * Parses a request head (the bytes up to and including its blank line, as latin1 text).
 * Throws BadRequest for anything that is not a CONNECT or an http:// absolute-URI request.
 */
export function parseRequestHead(head: string): ProxyRequest {
  if (head.includes("\0")) throw new BadRequest("NUL byte in the request head");
  const lines = head.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  // RFC 9112 §2.2: ignore at least one empty line before the request line.
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const requestLine = lines.shift();
  if (requestLine === undefined) throw new BadRequest("empty request");
  const rl = REQUEST_LINE.exec(requestLine);
  if (!rl || !TOKEN.test(rl[1]!)) throw new BadRequest("malformed request line");
  const method = rl[1]!;
  const target = rl[2]!;
  const version = rl[3]!;

  const headers: [string, string][] = [];
  for (const line of lines) {
    if (line.includes("\r")) throw new BadRequest("bare CR in the request head");
    if (line.startsWith(" ") || line.startsWith("\t")) throw new BadRequest("folded header lines are not accepted");
    const h = HEADER_LINE.exec(line);
    if (!h || !TOKEN.test(h[1]!)) throw new BadRequest(`malformed header line "${line.slice(0, 60)}"`);
    if (BAD_VALUE.test(h[2]!)) throw new BadRequest(`control character in header ${h[1]}`);
    headers.push([h[1]!, h[2]!]);
  }

  if (method === "CONNECT") return { kind: "connect", method, ...parseAuthority(target) };

  if (target.startsWith("/") || target === "*") {
    throw new BadRequest(`"${target}" is not a proxy request: send an absolute http:// URI, or CONNECT host:port`);
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target);
  if (!scheme) throw new BadRequest("malformed request target");
  if (scheme[1]!.toLowerCase() !== "http") {
    throw new BadRequest(`only http:// URIs are forwarded (use CONNECT for ${scheme[1]!.toLowerCase()}://)`);
  }
  const afterScheme = target.slice(scheme[0].length);
  const cut = afterScheme.search(/[/?#]/);
  let authority = cut < 0 ? afterScheme : afterScheme.slice(0, cut);
  let path = cut < 0 ? "" : afterScheme.slice(cut);
  // user:password@ never goes upstream in origin-form; the host is what follows it.
  const at = authority.lastIndexOf("@");
  if (at >= 0) authority = authority.slice(at + 1);
  const dst = parseAuthority(authority, 80);
  // A fragment is the client's own business (RFC 9110 §4.2.4): never sent upstream.
  const hash = path.indexOf("#");
  if (hash >= 0) path = path.slice(0, hash);
  if (path === "") path = "/";
  else if (path.startsWith("?")) path = "/" + path;

  const listed = new Set<string>();
  let hosts = 0;
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    if (n === "host") hosts++;
    if (n === "connection") for (const t of value.split(",")) listed.add(t.trim().toLowerCase());
  }
  if (hosts > 1) throw new BadRequest("more than one Host header");
  let out = `${method} ${path} HTTP/${version}\r\n`;
  // The URI's authority replaces the client's Host (RFC 9112 §3.2.2), where it stood: the
  // destination serves the site the policy checked, never another one on the same address.
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n) || (listed.has(n) && !NEVER_DROPPED.has(n))) continue;
    out += n === "host" ? `${name}: ${hostHeader(dst)}\r\n` : `${name}: ${value}\r\n`;
  }
  if (hosts === 0) out += `Host: ${hostHeader(dst)}\r\n`;
  out += "Connection: close\r\n\r\n";
  return { kind: "forward", method, ...dst, upstreamHead: out };
}

/**
 * Watches the bytes a destination sends back, without changing them, for the status of its final
 * response: interim 1xx heads (100 Continue, 103 Early Hints) are skipped. `status` is 0 until a
 * status line is seen, and stays 0 when the response does not start with one.
 */
export class ResponseStatus {
  status = 0;
  private pending: Buffer | null = Buffer.alloc(0);

  feed(chunk: Buffer): void {
    if (this.pending === null) return;
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const eol = buf.indexOf(LF);
      if (eol < 0) break;
      const m = /^HTTP\/\d\.\d (\d{3})(?:[ \r]|$)/.exec(buf.toString("latin1", 0, eol));
      if (!m) {
        this.pending = null;
        return;
      }
      const code = Number(m[1]);
      this.status = code;
      if (code >= 200 || code === 101) {
        this.pending = null;
        return;
      }
      const end = findHeadEnd(buf);
      if (end < 0) break;
      buf = buf.subarray(end);
      if (buf.length === 0) break;
    }
    // Keep a copy (not a view into a chunk that is on its way out) of the unfinished head.
    this.pending = buf.length > MAX_HEAD_BYTES ? null : Buffer.from(buf);
  }
}
