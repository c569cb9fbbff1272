// Request heads for the built-in proxy (src/proxy/head.ts), pure: the edge cases and the exact
// reasons a client is given. The common cases (CONNECT targets, hop-by-hop headers, refusals) and
// the proxy itself are in test/proxy.test.ts.
import { describe, expect, test } from "bun:test";
import { BadRequest, findHeadEnd, MAX_HEAD_BYTES, parseAuthority, parseRequestHead, ResponseStatus } from "../src/proxy/head.ts";

const bytes = (s: string) => Buffer.from(s, "latin1");

/** The BadRequest message `f` throws, or "no error". */
function reason(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!(e instanceof BadRequest)) throw e;
    expect(e.name).toBe("BadRequest");
    return e.message;
  }
  return "no error";
}

const upstream = (head: string) => {
  const r = parseRequestHead(head);
  if (r.kind !== "forward") throw new Error(`not forwarded: ${head}`);
  return r.upstreamHead;
};

describe("findHeadEnd", () => {
  test("CRLF, bare LF and the two mixed", () => {
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\n\r\n"))).toBe(18);
    expect(findHeadEnd(bytes("GET / HTTP/1.1\n\n"))).toBe(16);
    expect(findHeadEnd(bytes("GET / HTTP/1.1\n\r\n"))).toBe(17);
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\n\nbody"))).toBe(17);
  });

  test("not yet: empty, one line, a blank line cut after its CR", () => {
    expect(findHeadEnd(bytes(""))).toBe(-1);
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\n"))).toBe(-1);
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\n\r"))).toBe(-1);
    // a CR alone does not end a line
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\r\r\r"))).toBe(-1);
  });

  test("resuming from the previous length minus 3 finds an end that spans both reads", () => {
    const first = "GET / HTTP/1.1\r\nA: b\r";
    const all = bytes(first + "\n\r\nrest");
    expect(findHeadEnd(bytes(first))).toBe(-1);
    expect(findHeadEnd(all, first.length - 3)).toBe(24);
    // a negative start is the beginning; a start past the end finds nothing
    expect(findHeadEnd(bytes("\n\n"), -5)).toBe(2);
    expect(findHeadEnd(all, all.length)).toBe(-1);
  });
});

describe("parseAuthority", () => {
  test("a default port applies only when none is given", () => {
    expect(parseAuthority("example.com", 80)).toEqual({ host: "example.com", port: 80 });
    expect(parseAuthority("[2001:db8::1]", 80)).toEqual({ host: "2001:db8::1", port: 80 });
    expect(parseAuthority("example.com:8080", 80)).toEqual({ host: "example.com", port: 8080 });
    expect(parseAuthority("10.0.0.1:00443")).toEqual({ host: "10.0.0.1", port: 443 });
  });

  test("a CONNECT's IPv6 address without brackets (Python 3.11 writes it so): the port after the last colon", () => {
    expect(parseAuthority("::1:443")).toEqual({ host: "::1", port: 443 });
    expect(parseAuthority("2001:db8::1:8443")).toEqual({ host: "2001:db8::1", port: 8443 });
    expect(parseAuthority("1:2:3:4:5:6:7:8:443")).toEqual({ host: "1:2:3:4:5:6:7:8", port: 443 });
    expect(parseAuthority("::ffff:127.0.0.1:80")).toEqual({ host: "::ffff:127.0.0.1", port: 80 });
  });

  test("the reasons, exactly", () => {
    expect(reason(() => parseAuthority("example.com"))).toBe('"example.com" has no port: CONNECT needs host:port');
    expect(reason(() => parseAuthority("[::1]"))).toBe('"[::1]" has no port: CONNECT needs host:port');
    expect(reason(() => parseAuthority("[::1:443"))).toBe('malformed host "[::1:443": no closing ]');
    expect(reason(() => parseAuthority("[1.2.3.4]:443"))).toBe('malformed host "[1.2.3.4]:443": not an IPv6 address in brackets');
    expect(reason(() => parseAuthority("::1:443", 80))).toBe('malformed host "::1:443": an IPv6 address must be in brackets');
    expect(reason(() => parseAuthority("fe80::1%eth0:443"))).toBe('malformed host "fe80::1%eth0:443": not an IPv6 address and port');
    expect(reason(() => parseAuthority("a:b:443"))).toBe('malformed host "a:b:443": not an IPv6 address and port');
    expect(reason(() => parseAuthority(":443"))).toBe('malformed host ":443"');
    expect(reason(() => parseAuthority("exa%mple.com:443"))).toBe('malformed host "exa%mple.com:443"');
    expect(reason(() => parseAuthority("[::1]x"))).toBe('malformed port in "[::1]x"');
    expect(reason(() => parseAuthority("example.com:"))).toBe('malformed port in "example.com:"');
    expect(reason(() => parseAuthority("example.com:+1"))).toBe('malformed port in "example.com:+1"');
    expect(reason(() => parseAuthority("example.com:123456"))).toBe('malformed port in "example.com:123456"');
  });

  test("host names up to 253 characters", () => {
    const name = `${"a".repeat(63)}.`.repeat(3) + "a".repeat(61);
    expect(name).toHaveLength(253);
    expect(parseAuthority(`${name}:443`)).toEqual({ host: name, port: 443 });
    expect(reason(() => parseAuthority(`${name}a:443`))).toBe(`malformed host "${name}a:443"`);
  });
});

describe("parseRequestHead", () => {
  test("the reasons a client is given, exactly", () => {
    const cases: [string, string][] = [
      ["GET http://a/ HTTP/1.1\r\nX: a\0b\r\n\r\n", "NUL byte in the request head"],
      ["\r\n\r\n", "empty request"],
      ["", "empty request"],
      ["GET http://a/ HTTP/1.1 extra\r\n\r\n", "malformed request line"],
      ["GE(T http://a/ HTTP/1.1\r\n\r\n", "malformed request line"],
      ["GET  http://a/ HTTP/1.1\r\n\r\n", "malformed request line"],
      ["GET http://a/ http/1.1\r\n\r\n", "malformed request line"],
      ["GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR in the request head"],
      ["GET http://a/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", "folded header lines are not accepted"],
      ["GET http://a/ HTTP/1.1\r\nno colon here\r\n\r\n", 'malformed header line "no colon here"'],
      ["GET http://a/ HTTP/1.1\r\nX : a\r\n\r\n", 'malformed header line "X : a"'],
      ["GET http://a/ HTTP/1.1\r\n: a\r\n\r\n", 'malformed header line ": a"'],
      ["GET http://a/ HTTP/1.1\r\nX: a\x7fb\r\n\r\n", "control character in header X"],
      ["GET http://a/ HTTP/1.1\r\nX: a\x1bb\r\n\r\n", "control character in header X"],
      ["GET /index.html HTTP/1.1\r\n\r\n", '"/index.html" is not a proxy request: send an absolute http:// URI, or CONNECT host:port'],
      ["OPTIONS * HTTP/1.1\r\n\r\n", '"*" is not a proxy request: send an absolute http:// URI, or CONNECT host:port'],
      ["GET example.com/ HTTP/1.1\r\n\r\n", "malformed request target"],
      ["connect example.com:443 HTTP/1.1\r\n\r\n", "malformed request target"],
      ["GET HTTPS://example.com/ HTTP/1.1\r\n\r\n", "only http:// URIs are forwarded (use CONNECT for https://)"],
      ["GET ws://example.com/ HTTP/1.1\r\n\r\n", "only http:// URIs are forwarded (use CONNECT for ws://)"],
      ["GET http://a/ HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n", "more than one Host header"],
      ["GET http://:80/ HTTP/1.1\r\n\r\n", 'malformed host ":80"'],
    ];
    for (const [head, why] of cases) expect({ head, why: reason(() => parseRequestHead(head)) }).toEqual({ head, why });
    // a long bad header line is quoted only in part
    expect(reason(() => parseRequestHead(`GET http://a/ HTTP/1.1\r\n${"x".repeat(100)}\r\n\r\n`))).toBe(`malformed header line "${"x".repeat(60)}"`);
  });

  test("CONNECT ignores its headers' shape beyond the checks, and HTTP/1.0 is fine", () => {
    expect(parseRequestHead("CONNECT example.com:443 HTTP/1.0\r\nUser-Agent: x\r\n\r\n")).toEqual({ kind: "connect", method: "CONNECT", host: "example.com", port: 443 });
    expect(parseRequestHead("CONNECT [::1]:22 HTTP/1.1\n\n")).toEqual({ kind: "connect", method: "CONNECT", host: "::1", port: 22 });
  });

  test("empty lines before the request line are skipped; bare-LF heads go upstream with CRLF", () => {
    expect(upstream("\r\n\nGET http://a/x HTTP/1.1\nX-A: 1\n\n")).toBe("GET /x HTTP/1.1\r\nX-A: 1\r\nHost: a\r\nConnection: close\r\n\r\n");
  });

  test("the origin-form path: empty, query only, fragment only", () => {
    expect(upstream("GET http://a HTTP/1.1\r\n\r\n")).toBe("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(upstream("GET http://a?q=1 HTTP/1.1\r\n\r\n")).toStartWith("GET /?q=1 HTTP/1.1\r\n");
    expect(upstream("GET http://a#top HTTP/1.1\r\n\r\n")).toStartWith("GET / HTTP/1.1\r\n");
    expect(upstream("GET http://a/b/c?d=e&f HTTP/1.1\r\n\r\n")).toStartWith("GET /b/c?d=e&f HTTP/1.1\r\n");
  });

  test("user info never goes upstream, whatever it holds", () => {
    expect(parseRequestHead("GET http://u:p@ss@example.com:81/ HTTP/1.1\r\n\r\n")).toEqual({
      kind: "forward",
      method: "GET",
      host: "example.com",
      port: 81,
      upstreamHead: "GET / HTTP/1.1\r\nHost: example.com:81\r\nConnection: close\r\n\r\n",
    });
  });

  test("the Host made from the URI leaves out port 80 and brackets IPv6", () => {
    expect(upstream("GET http://[2001:db8::1]/ HTTP/1.1\r\n\r\n")).toContain("\r\nHost: [2001:db8::1]\r\n");
    expect(upstream("GET http://a:80/ HTTP/1.1\r\n\r\n")).toContain("\r\nHost: a\r\n");
    expect(upstream("GET http://a:8080/ HTTP/1.1\r\n\r\n")).toContain("\r\nHost: a:8080\r\n");
  });

  test("header values: outer blanks trimmed, inner ones, tabs and 8-bit bytes kept; empty values kept", () => {
    expect(upstream("PURGE http://a/ HTTP/1.1\r\nX-A: \t one  two\t \r\nX-Empty:\r\nX-Tab: a\tb\r\nX-Bytes: \xff\xfe\r\n\r\n")).toBe(
      "PURGE / HTTP/1.1\r\nX-A: one  two\r\nX-Empty: \r\nX-Tab: a\tb\r\nX-Bytes: \xff\xfe\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
  });

  test("Connection may drop other headers, but never Host, Content-Length or Transfer-Encoding", () => {
    expect(
      upstream("POST http://a/ HTTP/1.1\r\nhost: a\r\nConnection: close, HOST, transfer-encoding, Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ).toBe("POST / HTTP/1.1\r\nhost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  });

  // RFC 9112 §3.2.2: a proxy MUST replace the Host of an absolute-form request with the URI's
  // authority. The proxy connects to the URI's host but keeps the client's Host today.
  test("an absolute URI's authority replaces the client's Host (RFC 9112 §3.2.2)", () => {
    expect(upstream("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n")).toBe("GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
  });

  // RFC 9110 §4.2.4 / 9112 §3.2.1: a fragment is never part of a request target.
  test("a fragment is not sent upstream", () => {
    expect(upstream("GET http://a/x#frag HTTP/1.1\r\n\r\n")).toStartWith("GET /x HTTP/1.1\r\n");
  });
});

describe("ResponseStatus", () => {
  const statusOf = (...chunks: string[]) => {
    const r = new ResponseStatus();
    for (const c of chunks) r.feed(bytes(c));
    return r.status;
  };

  test("a status line without a reason, HTTP/1.0, and 101 (which ends the watch)", () => {
    expect(statusOf("HTTP/1.1 204\r\n\r\n")).toBe(204);
    expect(statusOf("HTTP/1.1 204\n")).toBe(204);
    expect(statusOf("HTTP/1.0 200 OK\r\n")).toBe(200);
    expect(statusOf("HTTP/1.1 101 Switching Protocols\r\n\r\n", "HTTP/1.1 500 x\r\n")).toBe(101);
  });

  test("0 until the first line has arrived whole; not HTTP stays 0", () => {
    expect(statusOf("HTTP/1.1 20")).toBe(0);
    expect(statusOf("HTTP/1.1 20", "0 OK\r\n")).toBe(200);
    expect(statusOf("HTTP/1.1 2000 Too long\r\n")).toBe(0);
    expect(statusOf("HTTP/2 200\r\n")).toBe(0);
    expect(statusOf("SSH-2.0-OpenSSH_9.6\r\n", "HTTP/1.1 200 OK\r\n")).toBe(0);
  });

  test("the final status is kept: a body that looks like a status line changes nothing", () => {
    expect(statusOf("HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n", "HTTP/1.1 500 x\r\n\r\n")).toBe(200);
  });

  test("interim heads split anywhere, the blank line included", () => {
    expect(statusOf("HTTP/1.1 100 Continue\r\n\r", "\nHTTP/1.1 201 Created\r\n")).toBe(201);
    expect(statusOf("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n", "\r\n", "HTTP/1.1 302 Found\r\n\r\n")).toBe(302);
  });

  test("after an interim head, whatever is not a status line stops the watch at the interim status", () => {
    expect(statusOf("HTTP/1.1 100 Continue\r\n\r\ngarbage\r\n", "HTTP/1.1 200 OK\r\n")).toBe(100);
  });

  test("an interim head longer than the head limit stops the watch", () => {
    expect(statusOf("HTTP/1.1 103 Early Hints\r\nLink: ", "x".repeat(MAX_HEAD_BYTES), "\r\n\r\nHTTP/1.1 200 OK\r\n")).toBe(103);
    // just under the limit it keeps waiting
    expect(statusOf("HTTP/1.1 103 Early Hints\r\nLink: ", "x".repeat(MAX_HEAD_BYTES - 100), "\r\n\r\nHTTP/1.1 200 OK\r\n")).toBe(200);
  });
});
