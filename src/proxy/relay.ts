// `--external-proxy`: the door inside the sandbox relays each connection, byte for byte, to the
// user's own proxy, which listens in proxywall's own namespace (its loopback included). The user's
// proxy decides; proxywall only carries. Back-pressure comes from pipe().
import net from "node:net";
import { diag } from "../diag.ts";
import { listenOn } from "./http-proxy.ts";

export interface RelayHandle {
  close(): Promise<void>;
}

export async function startRelay(opts: { listen: { host: string; port: number }[]; netns: string; to: { host: string; port: number } }): Promise<RelayHandle> {
  const servers: net.Server[] = [];
  const open = new Set<net.Socket>();
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
      const upstream = net.connect({ host: opts.to.host, port: opts.to.port });
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
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
  return {
    async close() {
      const stopped = closeAll();
      for (const sock of open) sock.destroy();
      await stopped;
    },
  };
}
