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
// write() returns false and the proxy pauses the sending side until "drain" (back-pressure). A
// tunnel whose ClientHello was checked is handed to the splice relay (splice-relay.ts), whose
// pipes give the same back-pressure in the kernel.
//
// Each client connection produces exactly one proxy_connect event, when both of its sockets are
// closed. Byte counts are the bytes carried by the upstream connection: bytes_up is everything
// written to the destination (for a forwarded request: the rewritten head plus the body and
// whatever follows it; for CONNECT: everything the client sent after the CONNECT head), bytes_down
// is everything read from the destination and passed to the client (for a forwarded request this
// includes the destination's response head). Responses the proxy makes itself (200 Connection
// established, 400, 502, ...) are not counted.
import net from "node:net";
import type { ProxyConnect } from "../events/schema.ts";
import { inNetns } from "../sys/netns.ts";
import { Connection, type Admit, type ConnectionOptions, type Identify } from "./connection.ts";
import { hostPort } from "./refusals.ts";
import { DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CLIENTS } from "./defaults.ts";


export interface ProxyOptions {
  /** Addresses to listen on (the sandbox's loopback: one IPv4 and one IPv6); port 0 picks one. */
  listen: { host: string; port: number }[];
  /** The network namespace (a path) the listening sockets are made in; upstream connections are made from proxywall's own. */
  netns?: string;
  sandbox: string;
  onEvent: (e: ProxyConnect) => void;
  /** Who opened a client connection (default: nobody can tell, process null). */
  identify?: Identify;
  /** Whether they may, and the checked addresses to connect to (the policy: src/proxy/admission.ts). */
  admit: Admit;
  /** How long to wait for a destination to accept the connection (default 10 s): then 504. */
  connectTimeoutMs?: number;
  /** How long a client may take to send its request head (default 30 s): then 408. */
  headTimeoutMs?: number;
  /** No byte either way for this long ends a tunnel or request (default 300 s). */
  idleTimeoutMs?: number;
  /** At most this many client connections at once (default 256); more get 503. */
  maxClients?: number;
}


export interface ProxyHandle {
  /** The port each `listen` entry got, in the same order. */
  ports: number[];
  /** Stops listening, cuts every open tunnel or request, and resolves when each has written its event. */
  close(): Promise<void>;
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
  const maxClients = opts.maxClients ?? DEFAULT_MAX_CLIENTS;
  const copts: ConnectionOptions = {
    sandbox: opts.sandbox,
    onEvent: opts.onEvent,
    identify: opts.identify ?? (() => null),
    admit: opts.admit,
    connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    headTimeoutMs: opts.headTimeoutMs ?? 30_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_S * 1000,
  };
  for (const server of servers) {
    // A listening socket that fails later (it should not) must not crash proxywall.
    server.on("error", () => {});
    server.on("connection", (socket: net.Socket) => {
      if (closing) {
        socket.destroy();
        return;
      }
      const full = conns.size >= maxClients ? `proxywall already serves ${maxClients} connections from this sandbox (the limit)` : null;
      const c = new Connection(socket, copts, () => conns.delete(c), full);
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

