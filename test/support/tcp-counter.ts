// A TCP listener of a test's own, inside a test namespace, that counts what reaches it: how many
// connections, and how many bytes they sent. A test that asserts a refusal checks that the count
// stayed 0 (a listener that would have been reached had the refusal failed); one that asserts a
// success checks the count moved. Optionally it answers an HTTP request head with a fixed reply.
import { createServer, type Server, type Socket } from "node:net";
import { inNetns } from "../../src/sys/netns.ts";

export interface CountingListener {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Bytes received so far, over all connections. */
  readonly bytes: number;
  /** Ends every open connection (a silent listener keeps them open until then). */
  dropAll(): void;
  close(): void;
}

export interface CountingOptions {
  /** Where to listen: "::" (the default) takes IPv4 and IPv6 on every address of the namespace. */
  host?: string;
  port?: number;
  /** The reply to a complete request head, then the connection is ended; null (the default): stay silent. */
  reply?: ((head: string) => string) | null;
}

/** An HTTP/1.1 200 reply with `body`, closing the connection. */
export function httpReply(body: string): string {
  return `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export async function countingListener(netnsPath: string, opts: CountingOptions = {}): Promise<CountingListener> {
  let connections = 0;
  let bytes = 0;
  const open = new Set<Socket>();
  const onConnection = (s: Socket) => {
    connections++;
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
    let head = "";
    s.on("data", (d: Buffer) => {
      bytes += d.length;
      if (!opts.reply) return;
      head += d.toString("latin1");
      if (head.includes("\r\n\r\n")) {
        s.end(opts.reply(head));
        head = "";
      }
    });
  };
  // The listening socket is made inside the namespace and stays there.
  const server: Server = inNetns(netnsPath, () => {
    const srv = createServer(onConnection);
    srv.listen({ host: opts.host ?? "::", port: opts.port ?? 0, ipv6Only: false });
    return srv;
  });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get connections() {
      return connections;
    },
    get bytes() {
      return bytes;
    },
    dropAll: () => {
      for (const s of open) s.destroy();
    },
    close: () => {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}
