// The splice relay (src/proxy/splice-*.ts): once a CONNECT tunnel only carries bytes, they move in
// the kernel on a thread of their own. Against real sockets on loopback, with the proxy in this
// process so that its descriptors can be counted in /proc/self/fd: the same outcomes, error texts
// and byte counts as the JS relay, half-close, resets, the idle clock, shutdown, the client limit,
// no descriptor left behind; and the compiled binary, run as a user runs it (privileged).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compile } from "../build.ts";
import { inNetns } from "../src/sys/netns.ts";
import { finPending } from "../src/sys/splice.ts";
import { eventsOf, splitStderr } from "./support/events.ts";
import { linkToHost, testNetns } from "./support/netns.ts";
import { describePrivileged, TEST_ARGS } from "./support/privileged.ts";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readlinkSync } from "node:fs";
import net from "node:net";
import * as v from "valibot";
import { ProxyConnect } from "../src/events/schema.ts";
import { startProxy, type ProxyOptions } from "../src/proxy/http-proxy.ts";
import { startRelay } from "../src/proxy/relay.ts";
import { prepareSplice, spliceReady } from "../src/proxy/splice-relay.ts";
import { admitAll } from "./support/admit.ts";
import { waitFor } from "./support/wait.ts";

const MB = 1024 * 1024;
const ESTABLISHED = "HTTP/1.1 200 Connection established\r\n\r\n";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * This process's descriptors by kind ("pipe", "socket", "anon_inode", ...). Files are left out:
 * the relay opens none, and in the whole suite other tests' files close on their own schedule
 * (a count of them differed by four between two moments of one passing test).
 */
function fds(pid: number | "self" = "self"): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const f of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const kind = readlinkSync(`/proc/${pid}/fd/${f}`).replace(/:.*/, "");
      if (kind.startsWith("/")) continue;
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    } catch {
      // closed while listing
    }
  }
  return kinds;
}

interface Server {
  port: number;
  conns: net.Socket[];
  close(): void;
}

/** A destination on loopback; it answers a FIN with its own unless `ownEnd` (onConn then does). */
function server(onConn: (s: net.Socket) => void, ownEnd = false): Promise<Server> {
  return new Promise((resolve) => {
    const conns: net.Socket[] = [];
    const srv = net.createServer({ allowHalfOpen: true }, (s) => {
      conns.push(s);
      s.on("error", () => {});
      onConn(s);
      if (!ownEnd) s.on("end", () => s.end());
    });
    srv.listen(0, "127.0.0.1", () =>
      resolve({
        port: (srv.address() as net.AddressInfo).port,
        conns,
        close() {
          srv.close();
          for (const s of conns) s.destroy();
        },
      }),
    );
  });
}

interface Tunnel {
  s: net.Socket;
  /** Bytes after the 200 line. */
  got: () => Buffer;
  ended: Promise<void>;
  closed: Promise<void>;
}

/** A CONNECT tunnel to 127.0.0.1:port, open (the 200 read); `first` goes right after the head. */
async function tunnel(proxyPort: number, port: number, first = ""): Promise<Tunnel> {
  const s = net.connect({ port: proxyPort, host: "127.0.0.1", allowHalfOpen: true });
  s.on("error", () => {});
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((r) => s.on("end", () => r()));
  const closed = new Promise<void>((r) => s.on("close", () => r()));
  s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n${first}`);
  const all = () => Buffer.concat(parts);
  await waitFor("the 200", () => all().length >= ESTABLISHED.length);
  expect(all().subarray(0, ESTABLISHED.length).toString()).toBe(ESTABLISHED);
  return { s, got: () => all().subarray(ESTABLISHED.length), ended, closed };
}

let events: ProxyConnect[] = [];
let proxy: Awaited<ReturnType<typeof startProxy>> | null = null;

async function withProxy(f: (port: number) => Promise<void>, extra: Partial<ProxyOptions> = {}): Promise<void> {
  events = [];
  proxy = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: "splice", onEvent: (e) => events.push(v.parse(ProxyConnect, e)), admit: admitAll, ...extra });
  try {
    expect(await spliceReady()).toBe(true);
    await f(proxy.ports[0]!);
  } finally {
    await proxy.close();
  }
}

const event = (n: number) => waitFor(`proxy_connect #${n}`, () => events[n - 1], 10_000);

/** Pipes of this process now, minus those of `before`: 4 per spliced tunnel. */
const extraPipes = (before: Record<string, number>) => (fds().pipe ?? 0) - (before.pipe ?? 0);

beforeAll(async () => {
  // The relay thread starts with the first tunnel and stays for the process: its epoll and
  // eventfd are not a leak, so every count below is taken after it.
  prepareSplice();
  await spliceReady();
});

test("a tunnel moves to the kernel once open: 24 MiB each way at once, intact, exact counts; half-close passed on; nothing left after", async () => {
  const up = randomBytes(24 * MB);
  const down = randomBytes(24 * MB);
  let received: Buffer[] = [];
  // The destination sends its 24 MiB, reads the client's until its FIN, then answers with its own.
  const dest = await server((s) => {
    received = [];
    s.on("data", (d: Buffer) => received.push(d));
    s.write(down);
    s.on("end", () => s.end("bye"));
  }, true);
  try {
    await withProxy(async (port) => {
      const before = fds();
      // The first byte shows the tunnel is not TLS (the ClientHello gate): then it is handed over.
      const t = await tunnel(port, dest.port, "x");
      await waitFor("the hand-over", () => extraPipes(before) === 4);
      // The client's FIN comes after its bytes; the destination's bytes keep flowing after it.
      t.s.end(up);
      await t.ended;
      expect(sha(t.got())).toBe(sha(Buffer.concat([down, Buffer.from("bye")])));
      expect(sha(Buffer.concat(received))).toBe(sha(Buffer.concat([Buffer.from("x"), up])));
      const e = await event(1);
      expect(e).toMatchObject({ method: "CONNECT", status: 200, outcome: "ok", error: null, bytes_up: up.length + 1, bytes_down: down.length + 3 });
      await t.closed;
      expect(fds()).toEqual(before);
    });
  } finally {
    dest.close();
  }
}, 60_000);

test("the destination speaking first fills the client: the hand-over waits for the drain, and no byte is lost", async () => {
  const banner = randomBytes(32 * MB);
  const dest = await server((s) => s.write(banner));
  try {
    await withProxy(async (port) => {
      const before = fds();
      const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      s.on("error", () => {});
      const parts: Buffer[] = [];
      s.on("connect", () => {
        s.write(`CONNECT 127.0.0.1:${dest.port} HTTP/1.1\r\n\r\n`);
        s.pause(); // reads nothing yet: the proxy's writes to it back up
      });
      await waitFor("the destination", () => dest.conns.length === 1);
      await Bun.sleep(300);
      // The first bytes release the ClientHello gate while the proxy holds bytes for the client.
      s.write("hello");
      await Bun.sleep(200);
      expect(extraPipes(before)).toBe(0);
      s.on("data", (d: Buffer) => parts.push(d));
      s.resume();
      const all = () => Buffer.concat(parts);
      await waitFor("the banner", () => all().length >= ESTABLISHED.length + banner.length, 20_000);
      await waitFor("the hand-over after the drain", () => extraPipes(before) === 4);
      expect(sha(all().subarray(ESTABLISHED.length))).toBe(sha(banner));
      dest.conns[0]!.end();
      s.end();
      expect(await event(1)).toMatchObject({ outcome: "ok", bytes_up: 5, bytes_down: banner.length });
      await waitFor("every descriptor closed", () => extraPipes(before) === 0);
    });
  } finally {
    dest.close();
  }
}, 60_000);

test("resets: the JS relay's outcomes and texts; a reset after a FIN loses nothing and is no error", async () => {
  let act: (s: net.Socket) => void = () => {};
  const dest = await server((s) => act(s));
  try {
    await withProxy(async (port) => {
      const before = fds();
      // The client resets mid-tunnel.
      act = (s) => s.on("data", (d) => s.write(d));
      let t = await tunnel(port, dest.port, "ping");
      await waitFor("echo", () => t.got().toString() === "ping");
      expect(extraPipes(before)).toBe(4);
      t.s.resetAndDestroy();
      expect(await event(1)).toMatchObject({ outcome: "client_error", error: "client: read ECONNRESET", bytes_up: 4, bytes_down: 4 });

      // The destination resets mid-tunnel.
      act = (s) => s.on("data", (d) => (s.write(d), setTimeout(() => s.resetAndDestroy(), 50)));
      t = await tunnel(port, dest.port, "ping");
      await t.ended;
      expect(await event(2)).toMatchObject({ outcome: "upstream_error", error: "upstream: read ECONNRESET", bytes_up: 4, bytes_down: 4 });

      // The client resets after its FIN, while the destination has not answered yet.
      act = (s) => s.on("data", () => {});
      t = await tunnel(port, dest.port, "ping");
      await waitFor("the hand-over", () => extraPipes(before) === 4);
      t.s.end();
      await Bun.sleep(100);
      t.s.resetAndDestroy();
      expect(await event(3)).toMatchObject({ outcome: "ok", error: null, bytes_up: 4, bytes_down: 0 });

      // The destination resets after its FIN: what the client sends then is not counted as lost.
      act = (s) => (s.end("fin"), setTimeout(() => s.resetAndDestroy(), 100));
      t = await tunnel(port, dest.port);
      await t.ended;
      await Bun.sleep(200);
      t.s.end("late");
      expect(await event(4)).toMatchObject({ outcome: "ok", error: null, bytes_down: 3 });
      await waitFor("every descriptor closed", () => extraPipes(before) === 0);
    });
  } finally {
    dest.close();
  }
}, 30_000);

test("idle clock: a spliced tunnel silent both ways is cut with its own reason; one moving a byte at a time is not", async () => {
  const dest = await server((s) => s.on("data", () => {}));
  try {
    await withProxy(
      async (port) => {
        const before = fds();
        const quiet = await tunnel(port, dest.port, "x");
        const busy = await tunnel(port, dest.port, "y");
        await waitFor("both handed over", () => extraPipes(before) === 8);
        const t0 = performance.now();
        // One byte up every 100 ms: the destination never answers, the tunnel is not idle.
        const ticker = setInterval(() => busy.s.write("."), 100);
        try {
          await quiet.ended;
          const ms = performance.now() - t0;
          expect(ms).toBeGreaterThan(350);
          expect(await event(1)).toMatchObject({ outcome: "idle_timeout", error: "no byte either way for 0.4 s", bytes_up: 1, bytes_down: 0 });
          await Bun.sleep(500);
          expect(events.length).toBe(1);
        } finally {
          clearInterval(ticker);
        }
        busy.s.end();
        dest.conns.at(-1)?.end();
        expect(await event(2)).toMatchObject({ outcome: "ok" });
        await waitFor("every descriptor closed", () => extraPipes(before) === 0);
      },
      { idleTimeoutMs: 400 },
    );
  } finally {
    dest.close();
  }
}, 30_000);

test("close() cuts spliced tunnels, one event each; the client limit counts them; no descriptor left", async () => {
  const dest = await server((s) => s.on("data", (d) => s.write(d)));
  try {
    events = [];
    const p = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: "splice", onEvent: (e) => events.push(e), admit: admitAll, maxClients: 2 });
    const before = fds();
    try {
      const [a, b] = [await tunnel(p.ports[0]!, dest.port, "a"), await tunnel(p.ports[0]!, dest.port, "b")];
      await waitFor("both handed over", () => extraPipes(before) === 8);
      // A third client is over the limit while both are spliced.
      const third = await new Promise<string>((resolve) => {
        const s = net.connect(p.ports[0]!, "127.0.0.1", () => s.write(`CONNECT 127.0.0.1:${dest.port} HTTP/1.1\r\n\r\n`));
        let got = "";
        s.on("data", (d) => (got += d));
        s.on("close", () => resolve(got));
        s.on("error", () => {});
      });
      expect(third).toStartWith("HTTP/1.1 503");
      expect(await event(1)).toMatchObject({ status: 503, outcome: "limit" });
      await p.close();
      await Promise.all([a.ended, b.ended]);
      expect(events.length).toBe(3);
      for (const e of events.slice(1)) expect(e).toMatchObject({ status: 200, outcome: "ok", error: "the proxy was shut down", bytes_up: 1, bytes_down: 1 });
      await Promise.all([a.closed, b.closed].map((c, i) => ([a, b][i]!.s.end(), c)));
      // The listening socket is closed too.
      const after = { ...before, socket: before.socket! - 1 };
      await waitFor("every descriptor closed", () => Bun.deepEquals(fds(), after)).catch(() => expect(fds()).toEqual(after));
    } finally {
      await p.close();
    }
  } finally {
    dest.close();
  }
}, 30_000);

test("--external-proxy's relay splices too: a tunnel through it intact, and close() cuts it", async () => {
  const body = randomBytes(8 * MB);
  const dest = await server((s) => s.end(body));
  const echo = await server((s) => s.on("data", (d) => s.write(d)));
  const theirs = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: "theirs", onEvent: () => {}, admit: admitAll });
  const relay = await startRelay({ listen: [{ host: "127.0.0.1", port: 0 }], netns: "/proc/self/ns/net", to: { host: "127.0.0.1", port: theirs.ports[0]! } });
  try {
    const before = fds();
    const t = await tunnel(relay.ports[0]!, dest.port);
    await t.ended;
    expect(sha(t.got())).toBe(sha(body));
    t.s.end();
    await t.closed;
    await waitFor("every descriptor closed", () => extraPipes(before) === 0);
    // Held open: the relay's pipes and the proxy's, 4 each.
    const open = await tunnel(relay.ports[0]!, echo.port, "x");
    await waitFor("both handed over", () => extraPipes(before) === 8);
    await relay.close();
    await open.ended;
    open.s.end();
    await waitFor("the relay's descriptors closed, and then the proxy's", () => extraPipes(before) === 0);
  } finally {
    await relay.close();
    await theirs.close();
    dest.close();
    echo.close();
  }
}, 30_000);

describePrivileged("the compiled binary", () => {
  let dir = "";
  let up: ReturnType<typeof testNetns> | null = null;
  let link: ReturnType<typeof linkToHost> | null = null;
  afterAll(() => {
    link?.remove();
    up?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("proxywall run splices a CMD's CONNECT tunnel (its relay thread is bundled): the file intact, its pipes gone after", async () => {
    dir = mkdtempSync(join(tmpdir(), "proxywall-splice-test-"));
    const bin = join(dir, "proxywall");
    await compile("linux-x64", bin, "0.0.0-splice");
    up = testNetns("splice");
    link = linkToHost(up, "10.209.24.0", "fd70:7099:24");
    // The destination sends the first MiB, then waits until the test has looked at proxywall's
    // descriptors, then sends the rest.
    const body = randomBytes(16 * MB);
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    let asked = false;
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const srv = inNetns(up.path, () =>
      net.createServer((s) => {
        s.on("error", () => {});
        s.once("data", async () => {
          asked = true;
          s.write(head);
          s.write(body.subarray(0, MB));
          await released;
          s.end(body.subarray(MB));
        });
      }),
    );
    await new Promise<void>((r) => inNetns(up!.path, () => srv.listen(0, "0.0.0.0", () => r())));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      // curl -p: a CONNECT tunnel for plain http, through the proxy's door.
      const cmd = ["bash", "-c", `curl -sS -m 30 -p http://${link.ns4}:${port}/file | sha256sum; sleep 1`];
      // PROXYWALL_DEBUG: proxywall says when the tunnel moves (the relay thread starts with the
      // first tunnel, so the hand-over may come a little after the request).
      const env = { ...process.env, NO_COLOR: "1", PROXYWALL_DEBUG: "1" };
      const p = Bun.spawn([bin, "run", ...TEST_ARGS, "--allow", `${link.ns4}:${port}`, "--", ...cmd], { stdout: "pipe", stderr: "pipe", env });
      const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
      try {
        let stderr = "";
        const dec = new TextDecoder();
        const reading = (async () => {
          for await (const chunk of p.stderr) stderr += dec.decode(chunk, { stream: true });
        })();
        await waitFor("the request through the tunnel", () => asked || p.exitCode !== null, 30_000);
        await waitFor("the hand-over to the splice relay", () => stderr.includes("moves to the splice relay") || p.exitCode !== null, 30_000);
        const during = fds(p.pid).pipe ?? 0;
        release();
        // The tunnel's event is written when it closes; CMD then sleeps a second.
        await waitFor("the proxy_connect line", () => stderr.includes('"proxy_connect"'), 30_000);
        const after = fds(p.pid).pipe ?? 0;
        const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
        await reading;
        expect(code).toBe(0);
        expect(stdout.split(" ")[0]).toBe(sha(body));
        const [e] = eventsOf(splitStderr(stderr).events, "proxy_connect");
        expect(e).toMatchObject({ method: "CONNECT", status: 200, outcome: "ok", bytes_down: head.length + body.length });
        // While the tunnel was open, proxywall held its two pipes (four descriptors) more than
        // after it closed, while CMD still ran.
        expect(during - after).toBe(4);
      } finally {
        clearTimeout(timer);
        p.kill("SIGKILL");
        release();
      }
    } finally {
      srv.close();
    }
  }, 120_000);
});

test("finPending: true when the peer's FIN is the next thing to read, false with a byte before it or nothing yet", async () => {
  const ends: ((s: net.Socket) => void)[] = [(s) => s.end(), (s) => s.end("abc"), () => {}];
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    accepted.push(s);
    ends[accepted.length - 1]!(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const clients: net.Socket[] = [];
  try {
    const fdOf = (s: net.Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
    for (let i = 0; i < ends.length; i++) {
      // Paused from the start: nothing reads the socket but finPending's peek.
      const c = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1").pause();
      clients.push(c);
      await new Promise((r) => c.once("connect", r));
      await waitFor("the server's side", () => accepted.length === i + 1);
    }
    await waitFor("the FIN", () => finPending(fdOf(clients[0]!)));
    await Bun.sleep(50); // the second peer's bytes and FIN have come too by now
    expect([finPending(fdOf(clients[0]!)), finPending(fdOf(clients[1]!)), finPending(fdOf(clients[2]!))]).toEqual([true, false, false]);
  } finally {
    for (const s of [...clients, ...accepted]) s.destroy();
    server.close();
  }
});
