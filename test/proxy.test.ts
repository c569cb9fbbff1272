// The built-in proxy against real clients (curl, raw sockets) and local servers, on loopback only
// (127.0.0.1 and ::1). Memory and throughput are measured with the proxy in a child process, so the
// numbers are the proxy's own and not this test runner's.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { statSync, writeFileSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import * as v from "valibot";
import { ProxyConnect } from "../src/events/schema.ts";
import { findHeadEnd, parseRequestHead, ResponseStatus, BadRequest } from "../src/proxy/head.ts";
import { startProxy, type ProxyOptions } from "../src/proxy/http-proxy.ts";
import { selfSignedCert } from "./support/cert.ts";
import { tempDir, type TempDir } from "./support/temp.ts";
import { waitFor } from "./support/wait.ts";
import { admitAll } from "./support/admit.ts";

const BUN = process.execPath;
const MB = 1024 * 1024;
const SANDBOX = "0badc0de";

let dir: TempDir | undefined;
let origin: ReturnType<typeof Bun.serve>;
let origin6: ReturnType<typeof Bun.serve> | null = null;
let tlsOrigin: ReturnType<typeof Bun.serve>;
let big: Buffer; // 5 MiB served by /big
let upload: string; // a 5 MiB file to POST

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

beforeAll(() => {
  dir = tempDir("proxywall-proxy-test-");
  big = randomBytes(5 * MB);
  upload = dir.path("upload.bin");
  writeFileSync(upload, randomBytes(5 * MB));
  const fetch = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname === "/big") return new Response(big);
    if (url.pathname === "/sha") {
      const body = new Uint8Array(await req.arrayBuffer());
      return new Response(`${body.length} ${sha(body)}`);
    }
    return new Response(`hello ${req.method} ${url.pathname}${url.search}`);
  };
  origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
  try {
    origin6 = Bun.serve({ hostname: "::1", port: 0, fetch });
  } catch {
    origin6 = null; // no IPv6 loopback here: the tests that need it say so
  }
  const { cert, key } = selfSignedCert(dir.root);
  tlsOrigin = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") },
    fetch: (req) => new Response(`secure hello ${new URL(req.url).pathname}`),
  });
});

afterAll(() => {
  origin?.stop(true);
  origin6?.stop(true);
  tlsOrigin?.stop(true);
  dir?.remove();
});

// ---- helpers --------------------------------------------------------------------------------

interface Proxy {
  port: number;
  port6: number | null;
  events: ProxyConnect[];
  /** Waits for the n-th event (1-based), validates it against the schema and returns it. */
  event(n: number): Promise<ProxyConnect>;
}

/** Starts a proxy on 127.0.0.1 (and ::1 where there is one), runs f, and always closes it. */
async function withProxy(f: (p: Proxy) => Promise<void>, extra: Partial<ProxyOptions> = {}): Promise<void> {
  const events: ProxyConnect[] = [];
  const listen = [{ host: "127.0.0.1", port: 0 }];
  if (origin6) listen.push({ host: "::1", port: 0 });
  const handle = await startProxy({ listen, sandbox: SANDBOX, onEvent: (e) => events.push(e), admit: admitAll, ...extra });
  try {
    await f({
      port: handle.ports[0]!,
      port6: handle.ports[1] ?? null,
      events,
      event: async (n) => v.parse(ProxyConnect, await waitFor(`proxy_connect event #${n}`, () => events[n - 1])),
    });
  } finally {
    await handle.close();
  }
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(process.env)) if (val !== undefined && !/proxy/i.test(k)) env[k] = val;
  return env;
}

async function curl(...args: string[]): Promise<{ code: number; out: Buffer; err: string }> {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "30", ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  const [out, err, code] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
  return { code, out: Buffer.from(out), err };
}

/** Connects, writes `send` (then half-closes if asked), and returns everything read until the close. */
function exchange(port: number, send: string | Buffer, o: { host?: string; end?: boolean; ms?: number } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: o.host ?? "127.0.0.1", port, allowHalfOpen: true });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${o.ms ?? 5000} ms; got ${JSON.stringify(Buffer.concat(got).toString("latin1").slice(0, 200))}`));
    }, o.ms ?? 5000);
    s.on("connect", () => {
      s.write(send);
      if (o.end) s.end();
    });
    s.on("data", (d: Buffer) => got.push(d));
    s.on("end", () => s.end());
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
  });
}

interface RawServer {
  port: number;
  close(): void;
}

function rawServer(host: string, onConn: (s: net.Socket) => void): Promise<RawServer> {
  return new Promise((resolve, reject) => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
      onConn(s);
    });
    server.once("error", reject);
    server.listen({ host, port: 0 }, () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close() {
          server.close();
          for (const s of sockets) s.destroy();
        },
      }),
    );
  });
}

/** Echoes every byte and ends when the client ends. */
const echoServer = (host: string) =>
  rawServer(host, (s) => {
    s.pipe(s);
  });

interface Recorded {
  received: Buffer;
  sent: number;
}

/**
 * An HTTP origin that keeps every byte it receives: it reads a head and a Content-Length body,
 * answers with the body's length and sha256 and `Connection: close`, and closes.
 */
async function recordingOrigin(): Promise<RawServer & { conns: Recorded[] }> {
  const conns: Recorded[] = [];
  const srv = await rawServer("127.0.0.1", (s) => {
    const rec: Recorded = { received: Buffer.alloc(0), sent: 0 };
    conns.push(rec);
    const parts: Buffer[] = [];
    let total = 0;
    let answered = false;
    s.on("data", (d: Buffer) => {
      parts.push(d);
      total += d.length;
      if (answered) return;
      const all = Buffer.concat(parts);
      const end = findHeadEnd(all);
      if (end < 0) return;
      const m = /content-length: *(\d+)/i.exec(all.toString("latin1", 0, end));
      const want = m ? Number(m[1]) : 0;
      if (all.length - end < want) return;
      answered = true;
      const body = all.subarray(end, end + want);
      const text = `${body.length} ${sha(body)}`;
      const res = `HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`;
      rec.sent = res.length;
      s.end(res);
    });
    s.on("close", () => (rec.received = Buffer.concat(parts, total)));
  });
  return { ...srv, conns };
}

/** Sends `size` bytes as fast as the reader takes them (respecting back-pressure), then ends. */
function firehose(size: number, prefix = ""): Promise<RawServer & { sent: () => number }> {
  let sent = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return rawServer("127.0.0.1", (s) => {
    s.on("data", () => {}); // whatever the request is
    if (prefix) {
      s.write(prefix);
      sent += prefix.length;
    }
    const pump = () => {
      while (sent < size && !s.destroyed) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          s.once("drain", pump);
          return;
        }
      }
      s.end();
    };
    pump();
  }).then((srv) => ({ ...srv, sent: () => sent }));
}

async function closedPort(): Promise<number> {
  const srv = await rawServer("127.0.0.1", () => {});
  srv.close();
  return srv.port;
}

function statusOf(res: Buffer): number {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(res.toString("latin1", 0, 20));
  return m ? Number(m[1]) : 0;
}

// ---- head parsing -------------------------------------------------------------------------------

test("heads: end detection, CONNECT targets, rewriting, refusals", () => {
  expect(findHeadEnd(Buffer.from("GET / HTTP/1.1\r\nA: b\r\n\r\nrest"))).toBe(24);
  expect(findHeadEnd(Buffer.from("GET / HTTP/1.1\nA: b\n\nrest"))).toBe(21);
  expect(findHeadEnd(Buffer.from("GET / HTTP/1.1\r\nA: b\r\n"))).toBe(-1);

  expect(parseRequestHead("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")).toEqual({
    kind: "connect",
    method: "CONNECT",
    host: "example.com",
    port: 443,
  });
  expect(parseRequestHead("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n")).toMatchObject({ host: "2001:db8::1", port: 8443 });

  const fwd = parseRequestHead(
    "POST http://user:pw@example.com:8080?x=1 HTTP/1.1\r\n" +
      "Host: example.com:8080\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n" +
      "Connection: keep-alive, X-Hop, Content-Length\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-Keep: caf\xe9\r\nContent-Length: 3\r\n\r\n",
  );
  expect(fwd).toEqual({
    kind: "forward",
    method: "POST",
    host: "example.com",
    port: 8080,
    upstreamHead: "POST /?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-Keep: caf\xe9\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
  });
  // HTTP/1.0 without Host gets one from the URI.
  expect(parseRequestHead("GET http://[::1]:81/a HTTP/1.0\r\n\r\n")).toMatchObject({
    host: "::1",
    port: 81,
    upstreamHead: "GET /a HTTP/1.0\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n",
  });
  expect(parseRequestHead("GET HTTP://Example.com/ HTTP/1.1\r\n\r\n")).toMatchObject({ host: "Example.com", port: 80 });

  for (const bad of [
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n", // origin-form
    "GET https://example.com/ HTTP/1.1\r\n\r\n",
    "GET ftp://example.com/ HTTP/1.1\r\n\r\n",
    "CONNECT example.com HTTP/1.1\r\n\r\n", // no port
    "CONNECT example.com:0 HTTP/1.1\r\n\r\n",
    "CONNECT example.com:65536 HTTP/1.1\r\n\r\n",
    "GET http://2001:db8::1:443/ HTTP/1.1\r\n\r\n", // v6 without brackets in a URL
    "CONNECT [nonsense]:443 HTTP/1.1\r\n\r\n",
    "GET http://exa mple.com/ HTTP/1.1\r\n\r\n",
    "GET http://example.com/ HTTP/2.0\r\n\r\n",
    "GET http://example.com/ HTTP/1.1\r\nBad Header: x\r\n\r\n",
    "GET http://example.com/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    "GET http://example.com/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "\r\n\r\n",
  ]) {
    expect(() => parseRequestHead(bad), JSON.stringify(bad)).toThrow(BadRequest);
  }
});

test("response status: the final status after interim 1xx, fed in pieces", () => {
  const r = new ResponseStatus();
  const bytes = Buffer.from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\nbody");
  for (let i = 0; i < bytes.length; i += 7) r.feed(bytes.subarray(i, i + 7));
  expect(r.status).toBe(404);
  const junk = new ResponseStatus();
  junk.feed(Buffer.from("not http\r\n"));
  expect(junk.status).toBe(0);
});

// ---- through the proxy with real clients -------------------------------------------------------

test("plain http: curl gets the body; the event tells method, client, destination, status, bytes", async () => {
  await withProxy(async (p) => {
    const hdr = dir!.path("hello.headers");
    const r = await curl("-x", `http://127.0.0.1:${p.port}`, "-D", hdr, `http://127.0.0.1:${origin.port}/some/path?q=1`);
    expect(r.err).toBe("");
    expect(r.out.toString()).toBe("hello GET /some/path?q=1");
    const e = await p.event(1);
    expect(e).toMatchObject({
      v: 1,
      event: "proxy_connect",
      sandbox: SANDBOX,
      method: "GET",
      client_addr: "127.0.0.1",
      dst_host: "127.0.0.1",
      dst_port: origin.port,
      status: 200,
      outcome: "ok",
      error: null,
    });
    expect(e.client_port).toBeGreaterThan(0);
    // bytes_down is everything the destination sent: its response head (as curl dumped it) and body.
    expect(e.bytes_down).toBe(statSync(hdr).size + r.out.length);
    expect(e.bytes_up).toBeGreaterThan(0);
    expect(e.duration_ms).toBeGreaterThanOrEqual(0);
  });
});

test("forwarded request: origin-form head, hop-by-hop headers dropped, exact byte counts", async () => {
  const o = await recordingOrigin();
  try {
    await withProxy(async (p) => {
      const body = "x".repeat(1000);
      const req =
        `PUT http://127.0.0.1:${o.port}/put?a=b HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nProxy-Connection: keep-alive\r\n` +
        `Proxy-Authorization: Basic dTpw\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 300\r\nX-Hop: gone\r\nX-Keep: kept\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`;
      const res = await exchange(p.port, req);
      expect(res.toString()).toEndWith(`${body.length} ${sha(Buffer.from(body))}`);
      const e = await p.event(1);
      const got = o.conns[0]!.received.toString("latin1");
      const head =
        `PUT /put?a=b HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nX-Keep: kept\r\n` + `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      expect(got).toBe(head + body);
      // bytes_up counts the rewritten head and the body: every byte written to the destination.
      expect(e).toMatchObject({ method: "PUT", status: 200, outcome: "ok", bytes_up: head.length + body.length, bytes_down: o.conns[0]!.sent });
      expect(res.length).toBe(o.conns[0]!.sent);

      // HTTP/1.0 style: no Host, and the client half-closes after its request; the answer still comes.
      const res2 = await exchange(p.port, `GET http://127.0.0.1:${o.port}/ HTTP/1.0\r\n\r\n`, { end: true });
      expect(statusOf(res2)).toBe(200);
      expect(o.conns[1]!.received.toString()).toBe(`GET / HTTP/1.0\r\nHost: 127.0.0.1:${o.port}\r\nConnection: close\r\n\r\n`);
      expect(await p.event(2)).toMatchObject({ method: "GET", status: 200, outcome: "ok", bytes_down: o.conns[1]!.sent });
    });
  } finally {
    o.close();
  }
});

test("https through CONNECT with curl -k, on the IPv4 and the IPv6 listener", async () => {
  await withProxy(async (p) => {
    const r = await curl("-k", "-x", `http://127.0.0.1:${p.port}`, `https://127.0.0.1:${tlsOrigin.port}/tls`);
    expect(r.err).toBe("");
    expect(r.out.toString()).toBe("secure hello /tls");
    const e = await p.event(1);
    expect(e).toMatchObject({ method: "CONNECT", client_addr: "127.0.0.1", dst_host: "127.0.0.1", dst_port: tlsOrigin.port, status: 200, outcome: "ok" });
    expect(e.bytes_up).toBeGreaterThan(200); // at least a ClientHello
    expect(e.bytes_down).toBeGreaterThan(1000); // at least a certificate

    if (p.port6 === null) return console.warn("no IPv6 loopback: IPv6 listener not tested");
    const r6 = await curl("-k", "-x", `http://[::1]:${p.port6}`, `https://127.0.0.1:${tlsOrigin.port}/v6`);
    expect(r6.err).toBe("");
    expect(r6.out.toString()).toBe("secure hello /v6");
    expect(await p.event(2)).toMatchObject({ method: "CONNECT", client_addr: "::1", status: 200, outcome: "ok" });
  });
});

test("plain http over the IPv6 listener to an IPv6 origin", async () => {
  if (!origin6) return console.warn("no IPv6 loopback: skipped");
  await withProxy(async (p) => {
    const r = await curl("-g", "-x", `http://[::1]:${p.port6}`, `http://[::1]:${origin6!.port}/six`);
    expect(r.err).toBe("");
    expect(r.out.toString()).toBe("hello GET /six");
    expect(await p.event(1)).toMatchObject({ method: "GET", client_addr: "::1", dst_host: "::1", dst_port: origin6!.port, status: 200, outcome: "ok" });
  });
});

test("CONNECT [::1]:port: bytes sent right after the head are forwarded; half-close is passed on", async () => {
  if (!origin6) return console.warn("no IPv6 loopback: skipped");
  const echo = await echoServer("::1");
  try {
    await withProxy(async (p) => {
      const hello = "pipelined ClientHello stand-in";
      // One write: head and first bytes together; then the client half-closes, the echo server
      // ends in turn, and the proxy must carry both FINs.
      const res = await exchange(p.port, `CONNECT [::1]:${echo.port} HTTP/1.1\r\nHost: [::1]:${echo.port}\r\n\r\n${hello}`, { end: true });
      expect(res.toString()).toBe(`HTTP/1.1 200 Connection established\r\n\r\n${hello}`);
      expect(await p.event(1)).toMatchObject({
        method: "CONNECT",
        dst_host: "::1",
        dst_port: echo.port,
        status: 200,
        bytes_up: hello.length,
        bytes_down: hello.length,
        outcome: "ok",
        error: null,
      });
    });
  } finally {
    echo.close();
  }
});

test("5 MiB download and 5 MiB upload arrive intact, with exact byte counts", async () => {
  const o = await recordingOrigin();
  try {
    await withProxy(async (p) => {
      const hdr = dir!.path("big.headers");
      const down = await curl("-x", `http://127.0.0.1:${p.port}`, "-D", hdr, `http://127.0.0.1:${origin.port}/big`);
      expect(down.err).toBe("");
      expect(down.out.length).toBe(big.length);
      expect(sha(down.out)).toBe(sha(big));
      const e1 = await p.event(1);
      expect(e1).toMatchObject({ status: 200, outcome: "ok", bytes_down: statSync(hdr).size + big.length });

      const up = await curl("-x", `http://127.0.0.1:${p.port}`, "-H", "Expect:", "--data-binary", `@${upload}`, `http://127.0.0.1:${o.port}/upload`);
      expect(up.err).toBe("");
      const file = readFileSync(upload);
      expect(up.out.toString()).toBe(`${file.length} ${sha(file)}`);
      const e2 = await p.event(2);
      const rec = o.conns[0]!;
      expect(e2).toMatchObject({ method: "POST", status: 200, outcome: "ok", bytes_up: rec.received.length, bytes_down: rec.sent });
      expect(rec.received.length).toBeGreaterThan(file.length);

      // The same upload chunked, to an origin that decodes it: the chunks stream through as bytes.
      const ch = await curl("-x", `http://127.0.0.1:${p.port}`, "-H", "Transfer-Encoding: chunked", "--data-binary", `@${upload}`, `http://127.0.0.1:${origin.port}/sha`);
      expect(ch.err).toBe("");
      expect(ch.out.toString()).toBe(`${file.length} ${sha(file)}`);
      expect(await p.event(3)).toMatchObject({ method: "POST", status: 200, outcome: "ok" });
    });
  } finally {
    o.close();
  }
}, 30_000);

test("destination refuses: 502 for CONNECT and for a forwarded request, outcome connect_failed", async () => {
  const port = await closedPort();
  await withProxy(async (p) => {
    const res = await exchange(p.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
    expect(statusOf(res)).toBe(502);
    expect(res.toString()).toContain("ECONNREFUSED");
    expect(await p.event(1)).toMatchObject({ method: "CONNECT", dst_port: port, status: 502, outcome: "connect_failed", bytes_up: 0, bytes_down: 0 });
    expect(p.events[0]!.error).toContain(`127.0.0.1:${port}`);

    const r = await curl("-x", `http://127.0.0.1:${p.port}`, "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/`);
    expect(r.out.toString()).toBe("502");
    expect(await p.event(2)).toMatchObject({ method: "GET", status: 502, outcome: "connect_failed" });

    const c = await curl("-p", "-x", `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${port}/`);
    expect(c.err).toContain("502");
    expect(await p.event(3)).toMatchObject({ method: "CONNECT", status: 502, outcome: "connect_failed" });
  });
});

test("destination that never answers the handshake: 504 after connectTimeoutMs", async () => {
  // A listener with a full accept queue that nobody accepts from: further SYNs are dropped, so
  // connect() hangs. Node and Bun do not honour a backlog of 0; python3 does.
  if (!Bun.which("python3")) return console.warn("python3 not found: 504 not tested");
  const py = Bun.spawn(
    ["python3", "-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(20)"],
    { stdout: "pipe" },
  );
  const fillers: net.Socket[] = [];
  try {
    const reader = py.stdout.getReader();
    const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
    reader.releaseLock();
    for (let i = 0; i < 3; i++) {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => {});
      fillers.push(s);
    }
    await Bun.sleep(100);
    await withProxy(
      async (p) => {
        const t0 = performance.now();
        const res = await exchange(p.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
        expect(statusOf(res)).toBe(504);
        expect(performance.now() - t0).toBeGreaterThan(250);
        const e = await p.event(1);
        expect(e).toMatchObject({ status: 504, outcome: "connect_failed" });
        expect(e.error).toContain("timed out after 300 ms");
      },
      { connectTimeoutMs: 300 },
    );
  } finally {
    for (const s of fillers) s.destroy();
    py.kill();
  }
});

test("not a proxy request, garbage, other schemes, oversized heads: 400, outcome bad_request", async () => {
  await withProxy(async (p) => {
    const cases: [string | Buffer, string][] = [
      ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a proxy request"],
      [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]), "NUL byte"],
      ["hello there\n\n", "malformed request line"],
      ["GET https://example.com/ HTTP/1.1\r\n\r\n", "only http://"],
      ["CONNECT example.com HTTP/1.1\r\n\r\n", "no port"],
      [`GET http://127.0.0.1:1/ HTTP/1.1\r\nX-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`, "larger than 65536"],
      [`GET http://127.0.0.1:1/ HTTP/1.1\r\nX-Big: ${"a".repeat(70 * 1024)}`, "larger than 65536"], // never ends
    ];
    let n = 0;
    for (const [send, why] of cases) {
      const res = await exchange(p.port, send);
      expect(statusOf(res)).toBe(400);
      expect(res.toString()).toContain(why);
      const e = await p.event(++n);
      expect(e).toMatchObject({ status: 400, outcome: "bad_request", bytes_up: 0, bytes_down: 0 });
      expect(e.error).toContain(why);
    }
    expect(p.events[0]!.method).toBe("GET");
    // A real client sees the 400 too.
    const r = await curl("-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${p.port}/`);
    expect(r.out.toString()).toBe("400");
    expect(await p.event(++n)).toMatchObject({ status: 400, outcome: "bad_request" });
  });
});

test("client silence, early close and resets: one event each, and the proxy keeps serving", async () => {
  const echo = await echoServer("127.0.0.1");
  try {
    await withProxy(
      async (p) => {
        // Connects and closes without a byte.
        await exchange(p.port, "", { end: true });
        expect(await p.event(1)).toMatchObject({ method: "", status: 0, outcome: "client_error", error: "client closed without sending a request" });

        // Half a head, then nothing: 408 after headTimeoutMs.
        const res = await exchange(p.port, "GET http://127.0.0.1/ HTTP/1.1\r\nHost:");
        expect(statusOf(res)).toBe(408);
        expect(await p.event(2)).toMatchObject({ status: 408, outcome: "client_error" });

        // A tunnel whose client resets it mid-stream.
        const s = net.connect(p.port, "127.0.0.1");
        s.on("error", () => {});
        let got = "";
        s.on("data", (d) => (got += d.toString()));
        s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\nping`);
        await waitFor("echo through the tunnel", () => got.endsWith("ping"));
        s.resetAndDestroy();
        const e = await p.event(3);
        expect(e).toMatchObject({ method: "CONNECT", status: 200, bytes_up: 4, bytes_down: 4, outcome: "client_error" });
        expect(e.error).not.toBeNull();

        // A forwarded request whose destination closes without answering: 502 upstream_error.
        const mute = await rawServer("127.0.0.1", (c) => c.on("data", () => c.end()));
        try {
          const r = await exchange(p.port, `GET http://127.0.0.1:${mute.port}/ HTTP/1.1\r\n\r\n`);
          expect(statusOf(r)).toBe(502);
          expect(await p.event(4)).toMatchObject({ status: 502, outcome: "upstream_error", bytes_down: 0 });
        } finally {
          mute.close();
        }

        // Still serving.
        const ok = await curl("-x", `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${origin.port}/after`);
        expect(ok.out.toString()).toBe("hello GET /after");
        expect(await p.event(5)).toMatchObject({ outcome: "ok" });
        await Bun.sleep(50);
        expect(p.events.length).toBe(5); // each connection wrote exactly one event
      },
      { headTimeoutMs: 200 },
    );
  } finally {
    echo.close();
  }
});

test("policy seam: allow() refusing gives 403 without connecting", async () => {
  const o = await recordingOrigin();
  const asked: string[] = [];
  try {
    await withProxy(
      async (p) => {
        const r = await curl("-x", `http://127.0.0.1:${p.port}`, "-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${o.port}/`);
        expect(r.out.toString()).toBe("403");
        const e = await p.event(1);
        expect(e).toMatchObject({ status: 403, outcome: "denied", rule: "deny test", reason: "not on the list", error: null });
        expect(asked).toEqual([`127.0.0.1:${o.port}`]);
        expect(o.conns.length).toBe(0);
      },
      {
        admit: async (t) => {
          asked.push(`${t.host}:${t.port}`);
          return { verdict: { allowed: false, outcome: "denied", rule: "deny test", reason: "not on the list" }, addrs: [], checkHello: () => null };
        },
      },
    );
  } finally {
    o.close();
  }
});

test("close() stops listening and cuts open tunnels, each with its event", async () => {
  const echo = await echoServer("127.0.0.1");
  const events: ProxyConnect[] = [];
  const h = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: SANDBOX, onEvent: (e) => events.push(e), admit: admitAll });
  const s = net.connect(h.ports[0]!, "127.0.0.1");
  try {
    s.on("error", () => {});
    let got = "";
    s.on("data", (d) => (got += d.toString()));
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\nopen`);
    await waitFor("tunnel", () => got.endsWith("open"));
    await h.close();
    expect(events.length).toBe(1);
    expect(v.parse(ProxyConnect, events[0])).toMatchObject({ status: 200, outcome: "ok", error: "the proxy was shut down" });
    await closed;
    // Nothing listens any more.
    const refused = await new Promise<string>((r) => {
      const t = net.connect(h.ports[0]!, "127.0.0.1");
      t.on("connect", () => (t.destroy(), r("connected")));
      t.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? "error"));
    });
    expect(refused).toBe("ECONNREFUSED");
  } finally {
    s.destroy();
    await h.close();
    echo.close();
  }
});

test("listening failures reject naming the address and port; nothing stays open", async () => {
  const busy = await rawServer("127.0.0.1", () => {});
  try {
    const noop = () => {};
    await expect(startProxy({ listen: [{ host: "127.0.0.1", port: busy.port }], sandbox: SANDBOX, onEvent: noop, admit: admitAll })).rejects.toThrow(
      `proxy cannot listen on 127.0.0.1:${busy.port}: the address is already in use (EADDRINUSE)`,
    );
    await expect(startProxy({ listen: [{ host: "localhost", port: 0 }], sandbox: SANDBOX, onEvent: noop, admit: admitAll })).rejects.toThrow(
      "proxy cannot listen on localhost:0: not an IP address",
    );
    if (origin6) {
      // The first address listens, the second fails: the first must be closed again.
      const free = await closedPort();
      const busy6 = await rawServer("::1", () => {});
      try {
        await expect(
          startProxy({ listen: [{ host: "127.0.0.1", port: free }, { host: "::1", port: busy6.port }], sandbox: SANDBOX, onEvent: noop, admit: admitAll }),
        ).rejects.toThrow(`[::1]:${busy6.port}`);
        const again = await startProxy({ listen: [{ host: "127.0.0.1", port: free }], sandbox: SANDBOX, onEvent: noop, admit: admitAll });
        expect(again.ports).toEqual([free]);
        await again.close();
      } finally {
        busy6.close();
      }
    }
  } finally {
    busy.close();
  }
});

// ---- the proxy in a child process: memory under back-pressure, throughput ----------------------

interface Child {
  port: number;
  pid: number;
  events: ProxyConnect[];
  event(n: number, ms?: number): Promise<ProxyConnect>;
  stop(): Promise<void>;
}

async function childProxy(): Promise<Child> {
  const script = dir!.path("child-proxy.ts");
  writeFileSync(
    script,
    `const { startProxy } = await import(${JSON.stringify(join(import.meta.dir, "../src/proxy/http-proxy.ts"))});
const { admitAll } = await import(${JSON.stringify(join(import.meta.dir, "support/admit.ts"))});
const p = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: ${JSON.stringify(SANDBOX)}, onEvent: (e) => console.log(JSON.stringify(e)), admit: admitAll });
console.log(JSON.stringify({ port: p.ports[0] }));
for await (const _ of Bun.stdin.stream()) {}
await p.close();
process.exit(0);
`,
  );
  const proc = Bun.spawn([BUN, script], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const lines: string[] = [];
  (async () => {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  const events: ProxyConnect[] = [];
  try {
    const first = await waitFor("the child proxy's port", () => lines[0], 10_000);
    return {
      port: (JSON.parse(first) as { port: number }).port,
      pid: proc.pid,
      events,
      event: async (n, ms = 5000) => {
        const line = await waitFor(`child event #${n}`, () => lines[n], ms);
        return v.parse(ProxyConnect, JSON.parse(line));
      },
      async stop() {
        proc.stdin.end();
        const t = setTimeout(() => proc.kill(), 3000);
        await proc.exited;
        clearTimeout(t);
      },
    };
  } catch (e) {
    proc.kill();
    throw e;
  }
}

/** Resident and peak resident memory of a process, from /proc, in bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Reads a whole tunnel/response through the proxy as fast as possible; returns bytes and seconds. */
function drain(port: number, request: string): Promise<{ bytes: number; secs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let bytes = 0;
    const s = net.connect(port, "127.0.0.1", () => s.write(request));
    s.on("data", (d) => (bytes += d.length));
    s.on("error", reject);
    s.on("close", () => resolve({ bytes, secs: (performance.now() - t0) / 1000 }));
  });
}

const STREAM = 200 * MB;

/**
 * How much a stalled stream can legitimately have left its sender: what the kernel may hold in the
 * socket buffers of both hops (sender's send buffer, proxy's receive and send buffers, receiver's
 * receive buffer). Those bytes are kernel memory, not the proxy's RSS.
 */
function kernelBuffers(): number {
  const max = (f: string) => {
    try {
      return Number(readFileSync(f, "utf8").trim().split(/\s+/)[2]) || 8 * MB;
    } catch {
      return 8 * MB;
    }
  };
  return 2 * (max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem"));
}

for (const mode of ["CONNECT", "GET"] as const) {
  test(`back-pressure (${mode}, download): a client that stops reading stops the destination, not grows the proxy`, async () => {
    const fire = await firehose(STREAM, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    const child = await childProxy();
    const s = new net.Socket();
    try {
      const req = (port: number) =>
        mode === "CONNECT" ? `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n` : `GET http://127.0.0.1:${port}/firehose HTTP/1.1\r\nHost: x\r\n\r\n`;
      // Warm up the child (JIT, buffers) with a small full transfer through a second firehose.
      const warm = await firehose(4 * MB);
      try {
        await drain(child.port, req(warm.port));
      } finally {
        warm.close();
      }
      await child.event(1);
      const before = memory(child.pid);

      let got = 0;
      s.on("error", () => {});
      s.on("data", (d) => {
        got += d.length;
        s.pause(); // read one chunk, then stop reading
      });
      s.connect(child.port, "127.0.0.1", () => s.write(req(fire.port)));
      await waitFor("first bytes", () => got > 0);
      await Bun.sleep(1000);
      const sentWhilePaused = fire.sent();
      const after = memory(child.pid);
      await Bun.sleep(200);
      expect(fire.sent()).toBe(sentWhilePaused); // the destination is held, not merely slow
      const growth = after.hwm - before.rss;
      console.log(
        `back-pressure ${mode}: destination sent ${(sentWhilePaused / MB).toFixed(1)} MiB of ${STREAM / MB} MiB while the client read ${got} bytes; ` +
          `proxy RSS ${(before.rss / MB).toFixed(1)} MiB before, peak ${(after.hwm / MB).toFixed(1)} MiB (growth ${(growth / MB).toFixed(1)} MiB)`,
      );
      expect(sentWhilePaused).toBeLessThan(Math.min(kernelBuffers() + 8 * MB, STREAM / 2));
      expect(growth).toBeLessThan(32 * MB);

      // Reading again lets the rest through, intact in length.
      s.removeAllListeners("data");
      const done = new Promise<void>((r) => s.on("close", () => r()));
      s.on("data", (d) => (got += d.length));
      s.on("end", () => s.end());
      s.resume();
      await done;
      const e = await child.event(2, 20_000);
      expect(e).toMatchObject({ status: 200, outcome: "ok", bytes_down: fire.sent() });
      expect(got).toBe(fire.sent() + (mode === "CONNECT" ? "HTTP/1.1 200 Connection established\r\n\r\n".length : 0));
    } finally {
      s.destroy();
      await child.stop();
      fire.close();
    }
  }, 60_000);
}

test("back-pressure (upload): a destination that stops reading stops the client, not grows the proxy", async () => {
  let received = 0;
  let paused: net.Socket | null = null;
  const sink = await rawServer("127.0.0.1", (c) => {
    c.on("data", (d) => {
      received += d.length;
      if (paused) return;
      c.pause(); // take the first chunk, then stop reading
      paused = c;
    });
    c.on("end", () => c.end());
  });
  const child = await childProxy();
  const s = new net.Socket();
  try {
    const before = memory(child.pid);
    let written = 0;
    let stop = false;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    s.on("error", () => {});
    s.on("data", () => {});
    s.connect(child.port, "127.0.0.1", () => {
      s.write(`CONNECT 127.0.0.1:${sink.port} HTTP/1.1\r\n\r\n`);
      const pump = () => {
        while (!stop && written < STREAM) {
          written += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
      };
      pump();
    });
    await waitFor("the destination's first bytes", () => received > 0);
    await Bun.sleep(1000);
    const writtenWhileStuck = written;
    const after = memory(child.pid);
    stop = true;
    const growth = after.hwm - before.rss;
    console.log(
      `back-pressure upload: client got ${(writtenWhileStuck / MB).toFixed(1)} MiB of ${STREAM / MB} MiB into its socket while the destination read ${received} bytes; ` +
        `proxy RSS ${(before.rss / MB).toFixed(1)} MiB before, peak ${(after.hwm / MB).toFixed(1)} MiB (growth ${(growth / MB).toFixed(1)} MiB)`,
    );
    expect(writtenWhileStuck).toBeLessThan(Math.min(kernelBuffers() + 8 * MB, STREAM / 2));
    expect(growth).toBeLessThan(32 * MB);
    (paused as net.Socket | null)?.resume();
    s.destroy();
    const e = await child.event(1);
    expect(e.method).toBe("CONNECT");
  } finally {
    s.destroy();
    await child.stop();
    sink.close();
  }
}, 60_000);

test("throughput: 100 MiB through a CONNECT tunnel on loopback", async () => {
  const size = 100 * MB;
  const fire = await firehose(size);
  const child = await childProxy();
  try {
    const r = await drain(child.port, `CONNECT 127.0.0.1:${fire.port} HTTP/1.1\r\n\r\n`);
    const e = await child.event(1, 30_000);
    expect(e).toMatchObject({ status: 200, outcome: "ok", bytes_down: size });
    expect(r.bytes).toBe(size + "HTTP/1.1 200 Connection established\r\n\r\n".length);
    console.log(`throughput: ${size / MB} MiB through a CONNECT tunnel in ${r.secs.toFixed(2)} s = ${(size / MB / r.secs).toFixed(0)} MiB/s`);
  } finally {
    await child.stop();
    fire.close();
  }
}, 60_000);
