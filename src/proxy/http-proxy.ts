// The built-in proxy: the only way out of the sandbox. CMD reaches it on the sandbox's own loopback
// (its listening sockets are made inside the sandbox namespace); it connects to destinations from
// proxywall's own namespace and relays bytes both ways.
//
//  - CONNECT host:port opens a tunnel: "200 Connection established", then raw bytes both ways.
//  - An absolute-URI request (`GET http://host:port/path HTTP/1.1`, any method) is forwarded: the
//    head is rewritten to origin-form with hop-by-hop headers dropped and `Connection: close`
//    added, then bytes flow both ways unparsed (bodies, Content-Length or chunked, stream through).
//    One request per client connection: the destination is told `Connection: close`, and when it
//    ends its side the proxy ends the client's, so a client sees the connection close after the
//    response and opens a new one for its next request. That keeps the proxy free of HTTP body
//    framing (no parsing of chunked encoding, no request smuggling between destinations).
//  - Everything else (origin-form requests, other schemes, malformed heads, heads over 64 KiB) gets
//    400 and outcome bad_request.
//
// Nothing is buffered beyond the sockets' own write buffers: when a receiver is slow, its socket's
// write() returns false and the proxy pauses the sending side until "drain" (back-pressure).
//
// Each client connection produces exactly one proxy_connect event, when both of its sockets are
// closed. Byte counts are the bytes carried by the upstream connection: bytes_up is everything
// written to the destination (for a forwarded request: the rewritten head plus the body and
// whatever follows it; for CONNECT: everything the client sent after the CONNECT head), bytes_down
// is everything read from the destination and passed to the client (for a forwarded request this
// includes the destination's response head). Responses the proxy makes itself (200 Connection
// established, 400, 502, ...) are not counted.
import net from "node:net";
import { diag } from "../diag.ts";
import { nowTs } from "../events/bypass-event.ts";
import type { ProxyConnect } from "../events/schema.ts";
import { inNetns } from "../sys/netns.ts";
import { BadRequest, findHeadEnd, MAX_HEAD_BYTES, parseRequestHead, ResponseStatus } from "./head.ts";

export const DEFAULT_PROXY_PORT = 3128;

export interface ProxyOptions {
  /** Addresses to listen on (the sandbox's loopback: one IPv4 and one IPv6); port 0 picks one. */
  listen: { host: string; port: number }[];
  /** The network namespace (a path) the listening sockets are made in; upstream connections are made from proxywall's own. */
  netns?: string;
  sandbox: string;
  onEvent: (e: ProxyConnect) => void;
  /** How long to wait for a destination to accept the connection (default 10 s): then 504. */
  connectTimeoutMs?: number;
  /** How long a client may take to send its request head (default 30 s): then 408. */
  headTimeoutMs?: number;
  /**
   * Policy seam (none is implemented yet: without it everything is allowed). Called once per
   * tunnel or request before connecting: true allows; false or a string (the reason, shown to the
   * client and put in the event's error) refuses with 403.
   */
  allow?: (host: string, port: number) => boolean | string;
}

export interface ProxyHandle {
  /** The port each `listen` entry got, in the same order. */
  ports: number[];
  /** Stops listening, cuts every open tunnel or request, and resolves when each has written its event. */
  close(): Promise<void>;
}

type Outcome = ProxyConnect["outcome"];

const ESTABLISHED = "HTTP/1.1 200 Connection established\r\n\r\n";
const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  408: "Request Timeout",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};
/** After an error response, how long the client has to read it and close before it is cut. */
const LINGER_MS = 2000;

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function listenError(host: string, port: number, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === "EADDRINUSE"
      ? "the address is already in use"
      : code === "EADDRNOTAVAIL"
        ? "the address is not present on this host"
        : code === "EACCES"
          ? "permission denied"
          : errorText(e);
  return new Error(`proxy cannot listen on ${hostPort(host, port)}: ${why}${code ? ` (${code})` : ""}`);
}

export function listenOn(host: string, port: number, netns?: string): Promise<net.Server> {
  if (net.isIP(host) === 0) return Promise.reject(new Error(`proxy cannot listen on ${hostPort(host, port)}: not an IP address`));
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true });
    const onError = (e: unknown) => {
      server.close();
      reject(listenError(host, port, e));
    };
    server.once("error", onError);
    try {
      const listen = () =>
        server.listen({ host, port }, () => {
          server.off("error", onError);
          resolve(server);
        });
      // The listening socket is made synchronously, in the namespace this thread is in at that
      // moment, and stays there: the door is inside the sandbox, its owner is not.
      if (netns) inNetns(netns, listen);
      else listen();
    } catch (e) {
      onError(e);
    }
  });
}

export async function startProxy(opts: ProxyOptions): Promise<ProxyHandle> {
  const conns = new Set<Connection>();
  const servers: net.Server[] = [];
  try {
    for (const l of opts.listen) servers.push(await listenOn(l.host, l.port, opts.netns));
  } catch (e) {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    throw e;
  }
  let closing: Promise<void> | null = null;
  for (const server of servers) {
    // A listening socket that fails later (it should not) must not crash proxywall.
    server.on("error", () => {});
    server.on("connection", (socket: net.Socket) => {
      if (closing) {
        socket.destroy();
        return;
      }
      const c = new Connection(socket, opts, () => conns.delete(c));
      conns.add(c);
    });
  }
  return {
    ports: servers.map((s) => (s.address() as net.AddressInfo).port),
    close() {
      closing ??= (async () => {
        const stopped = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
        await Promise.all([...conns].map((c) => c.abort("the proxy was shut down")));
        await Promise.all(stopped);
      })();
      return closing;
    },
  };
}

type State = "head" | "connecting" | "open" | "refused" | "done";

/** One client connection, from its first byte to its event. */
class Connection {
  private state: State = "head";
  private readonly t0 = performance.now();
  private readonly clientAddr: string;
  private readonly clientPort: number;
  private head: Buffer = Buffer.alloc(0);
  private method = "";
  private dstHost = "";
  private dstPort = 0;
  private status = 0;
  private bytesUp = 0;
  private bytesDown = 0;
  private outcome: Outcome | null = null;
  private error: string | null = null;
  private upstream: net.Socket | null = null;
  /** What the client sent while the upstream connection was being made (after the head). */
  private early: Buffer[] = [];
  private clientEndedEarly = false;
  private responseStatus: ResponseStatus | null = null;
  private wroteToClient = false;
  private clientClosed = false;
  private upstreamClosed = true;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly client: net.Socket,
    private readonly opts: ProxyOptions,
    private readonly forget: () => void,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    const addr = client.remoteAddress ?? "";
    this.clientAddr = addr.startsWith("::ffff:") && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
    this.clientPort = client.remotePort ?? 0;
    // A relay passes on small writes (TLS handshakes, interactive protocols) as they come.
    client.setNoDelay(true);
    client.on("data", (d: Buffer) => this.onClientData(d));
    client.on("end", () => this.onClientEnd());
    client.on("drain", () => this.upstream?.resume());
    client.on("error", (e) => this.fail("client_error", `client: ${errorText(e)}`));
    client.on("close", () => {
      this.clientClosed = true;
      // Closed before its read side ended (reset, or destroyed): nothing more can be relayed.
      if (this.state !== "done" && !client.readableEnded) this.fail("client_error", "the client connection was cut");
      this.maybeFinish();
    });
    this.timer = setTimeout(() => this.refuse(408, "client_error", "no complete request head in time"), opts.headTimeoutMs ?? 30_000);
    client.resume();
  }

  /** Cuts the connection (proxy shutdown) and resolves once its event is written. */
  abort(why: string): Promise<void> {
    if (this.state !== "done") {
      this.setOutcome(this.state === "open" ? "ok" : this.state === "connecting" ? "connect_failed" : "client_error", why);
      this.client.destroy();
      this.upstream?.destroy();
    }
    return this.done;
  }

  private setOutcome(outcome: Outcome, error: string | null): void {
    if (this.outcome !== null) return;
    this.outcome = outcome;
    this.error = error;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onClientData(d: Buffer): void {
    if (this.state === "open") {
      this.bytesUp += d.length;
      if (!this.upstream!.write(d)) this.client.pause();
      return;
    }
    if (this.state === "connecting") {
      this.early.push(d); // the client is paused; this is what was already on its way
      return;
    }
    if (this.state !== "head") return; // refused: discard what the client still sends
    const from = this.head.length - 3;
    this.head = this.head.length === 0 ? d : Buffer.concat([this.head, d]);
    const end = findHeadEnd(this.head, from);
    if (end < 0 ? this.head.length > MAX_HEAD_BYTES : end > MAX_HEAD_BYTES) {
      this.refuse(400, "bad_request", `request head larger than ${MAX_HEAD_BYTES} bytes`);
      return;
    }
    if (end < 0) return;
    this.clearTimer();
    this.client.pause();
    const rest = this.head.subarray(end);
    let req;
    try {
      req = parseRequestHead(this.head.toString("latin1", 0, end));
    } catch (e) {
      if (!(e instanceof BadRequest)) throw e;
      const m = /^(\S+) /.exec(this.head.toString("latin1", 0, Math.min(end, 32)));
      if (m && /^[A-Z]+$/.test(m[1]!)) this.method = m[1]!;
      this.refuse(400, "bad_request", e.message);
      return;
    }
    this.head = Buffer.alloc(0);
    this.method = req.method;
    this.dstHost = req.host;
    this.dstPort = req.port;
    let verdict: boolean | string;
    try {
      verdict = this.opts.allow ? this.opts.allow(req.host, req.port) : true;
    } catch (e) {
      verdict = `the policy failed: ${errorText(e)}`;
    }
    if (verdict !== true) {
      // No "denied" outcome exists in the event schema yet; policy is a later issue.
      const why = typeof verdict === "string" && verdict !== "" ? verdict : "not allowed";
      this.refuse(403, "connect_failed", `denied: ${why}`);
      return;
    }
    if (req.kind === "forward") {
      this.early.push(Buffer.from(req.upstreamHead, "latin1"));
      this.responseStatus = new ResponseStatus();
    }
    if (rest.length > 0) this.early.push(rest);
    this.connect();
  }

  private onClientEnd(): void {
    switch (this.state) {
      case "head":
        this.clearTimer();
        this.setOutcome(
          "client_error",
          this.head.length === 0 ? "client closed without sending a request" : "client closed before the request head was complete",
        );
        this.client.destroy();
        break;
      case "open":
        this.upstream!.end();
        break;
      case "connecting":
        this.clientEndedEarly = true;
        break;
      case "refused":
      case "done":
        break;
    }
  }

  private connect(): void {
    this.state = "connecting";
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const up = net.connect({ host: this.dstHost, port: this.dstPort, allowHalfOpen: true, noDelay: true });
    this.upstream = up;
    this.upstreamClosed = false;
    this.timer = setTimeout(() => {
      up.destroy();
      this.refuse(504, "connect_failed", `connecting to ${hostPort(this.dstHost, this.dstPort)} timed out after ${timeoutMs} ms`);
    }, timeoutMs);
    up.on("connect", () => {
      if (this.state !== "connecting") return;
      this.clearTimer();
      this.state = "open";
      if (!this.responseStatus) {
        this.status = 200;
        this.wroteToClient = true;
        this.client.write(ESTABLISHED);
      }
      let full = false;
      for (const b of this.early) {
        this.bytesUp += b.length;
        full = !up.write(b);
      }
      this.early = [];
      if (this.clientEndedEarly) up.end();
      else if (!full) this.client.resume(); // else "drain" resumes it
    });
    up.on("data", (d: Buffer) => {
      if (this.client.destroyed) return;
      this.bytesDown += d.length;
      this.wroteToClient = true;
      this.responseStatus?.feed(d);
      if (!this.client.write(d)) up.pause();
    });
    up.on("drain", () => {
      if (this.state === "open") this.client.resume();
    });
    up.on("end", () => {
      if (this.responseStatus && this.bytesDown === 0) {
        this.refuse(502, "upstream_error", `${hostPort(this.dstHost, this.dstPort)} closed the connection without a response`);
        return;
      }
      this.client.end();
    });
    up.on("error", (e) => {
      const msg = errorText(e);
      if (this.state === "connecting") {
        this.clearTimer();
        this.refuse(502, "connect_failed", `connecting to ${hostPort(this.dstHost, this.dstPort)}: ${msg}`);
      } else if (this.state === "open" && !this.wroteToClient) {
        this.refuse(502, "upstream_error", `${hostPort(this.dstHost, this.dstPort)}: ${msg}`);
      } else {
        this.fail("upstream_error", `upstream: ${msg}`);
      }
    });
    up.on("close", () => {
      this.upstreamClosed = true;
      if (this.state !== "done" && this.state !== "refused" && !up.readableEnded) this.fail("upstream_error", "the upstream connection was cut");
      this.maybeFinish();
    });
  }

  /** Answers the client with an error status of the proxy's own, then closes. */
  private refuse(code: number, outcome: Outcome, error: string): void {
    if (this.state === "refused" || this.state === "done") return;
    this.clearTimer();
    this.setOutcome(outcome, error);
    this.upstream?.destroy();
    if (this.wroteToClient || this.client.destroyed) {
      this.fail(outcome, error);
      return;
    }
    this.state = "refused";
    this.status = code;
    this.wroteToClient = true;
    const body = `${code} ${REASONS[code] ?? ""}: ${error}\n`;
    this.client.end(
      `HTTP/1.1 ${code} ${REASONS[code] ?? "Error"}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    // Keep reading (and dropping) what the client still sends, so that closing does not reset the
    // connection before it has read the answer; cut it if it does not close soon.
    this.client.resume();
    this.timer = setTimeout(() => this.client.destroy(), LINGER_MS);
  }

  /** Ends the connection at once: an error on either side, or a shutdown. */
  private fail(outcome: Outcome, error: string): void {
    // A reset is how many peers finish closing (a socket closed with unread data, or written to
    // after it closed, resets), so it is not counted as a failure when nothing is lost by it: a
    // client that had sent its FIN, or had been sent the destination's FIN; a destination that had
    // sent its FIN.
    const c = this.client;
    const harmless =
      this.state === "open" &&
      (outcome === "client_error" ? c.readableEnded || c.writableEnded : outcome === "upstream_error" && this.upstream!.readableEnded);
    if (!harmless) this.setOutcome(outcome, error);
    this.clearTimer();
    this.client.destroy();
    this.upstream?.destroy();
  }

  private maybeFinish(): void {
    if (this.state === "done" || !this.clientClosed || !this.upstreamClosed) return;
    this.state = "done";
    this.clearTimer();
    this.upstream?.destroy();
    this.client.destroy();
    if (this.responseStatus && this.status === 0) this.status = this.responseStatus.status;
    const e: ProxyConnect = {
      v: 1,
      event: "proxy_connect",
      ts: nowTs(),
      sandbox: this.opts.sandbox,
      method: this.method,
      client_addr: this.clientAddr,
      client_port: this.clientPort,
      dst_host: this.dstHost,
      dst_port: this.dstPort,
      status: this.status,
      bytes_up: this.bytesUp,
      bytes_down: this.bytesDown,
      duration_ms: Math.round((performance.now() - this.t0) * 10) / 10,
      outcome: this.outcome ?? "ok",
      error: this.error,
    };
    this.forget();
    try {
      this.opts.onEvent(e);
    } catch (err) {
      // Called from a socket's close handler: a throw here would be an uncaught exception.
      diag.error(`proxy: writing a proxy_connect event: ${errorText(err)}`);
    }
    this.resolveDone();
  }
}
