// `--external-proxy`: the door inside the sandbox relays each connection, byte for byte, to the
// user's own proxy, which listens in proxywall's own namespace (its loopback included). The user's
// proxy decides; proxywall only carries: once the connection to it is made, the bytes move in the
// kernel (splice-relay.ts), or, where that cannot be done, through pipe() with its back-pressure.
import net from "node:net";
import { diag } from "../diag.ts";
import { listenOn } from "./http-proxy.ts";
import { prepareSplice, spliceTunnel, type Spliced } from "./splice-relay.ts";

export interface RelayHandle {
  /** The port each `listen` entry got, in the same order. */
  ports: number[];
  close(): Promise<void>;
}

export async function startRelay(opts: { listen: { host: string; port: number }[]; netns: string; to: { host: string; port: number } }): Promise<RelayHandle> {
  const servers: net.Server[] = [];
  const open = new Set<net.Socket>();
  const spliced = new Map<Spliced, Promise<void>>();
  const closeAll = () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  try {
    for (const l of opts.listen) servers.push(await listenOn(l.host, l.port, opts.netns));
  } catch (e) {
    await closeAll();
    throw e;
  }
  for (const server of servers) {
    server.on("error", () => {});
    server.on("connection", (client: net.Socket) => {
      prepareSplice(); // the first connection starts the relay thread; it is ready by the next
      const upstream = net.connect({ host: opts.to.host, port: opts.to.port, allowHalfOpen: true });
      for (const sock of [client, upstream]) {
        open.add(sock);
        sock.on("close", () => open.delete(sock));
      }
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      // Either side failing ends both: a half-relayed proxy conversation is of no use.
      const cut = (who: string) => (e: Error) => {
        diag.debug(`relay: ${who}: ${e.message}`);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", cut("client"));
      upstream.on("error", cut(`your proxy at ${opts.to.host}:${opts.to.port}`));
      upstream.on("connect", () => {
        // What the client sent meanwhile waits in its socket, and goes first.
        let done = () => {};
        const s = spliceTunnel(client, upstream, Infinity, (e) => {
          if (e.end.kind === "error" || e.end.kind === "failed") diag.debug(`relay: ${JSON.stringify(e.end)}`);
          spliced.delete(s!);
          done();
        });
        if (s) {
          for (const sock of [client, upstream]) open.delete(sock);
          spliced.set(s, new Promise<void>((r) => (done = r)));
          return;
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
    });
  }
  return {
    ports: servers.map((s) => (s.address() as net.AddressInfo).port),
    async close() {
      const stopped = closeAll();
      for (const sock of open) sock.destroy();
      for (const s of spliced.keys()) s.cut();
      await Promise.all([stopped, ...spliced.values()]);
    },
  };
}
