// Network namespaces of the benchmark's own, for benchmarks that send requests through proxywall's
// proxy (bench/flood.ts). The sandbox has no host side: the proxy's door is on the sandbox's own
// loopback and the proxy connects out from proxywall's own namespace. So proxywall runs inside a
// namespace the benchmark makes (`nsenter --net`), joined by a veth pair to a second one where
// the benchmark's HTTP listener runs: the requests never leave namespaces the benchmark made, and
// the machine's own network is not touched. Two, not one: the proxy refuses the addresses of its
// own namespace (a guard against reaching the host through it).
import { Leftovers } from "./cleanup.ts";
import { readLines } from "./live.ts";
import { enterNetns as enter, makeNetnsPair, removeNetns } from "./netns-pair.ts";
import { randomId, type Proxywall } from "./support.ts";

/** proxywall's side of the veth pair and the listener's (not in CMD's NO_PROXY: through the proxy). */
const OWN_ADDR = "10.203.255.1";
const LISTEN_ADDR = "10.203.255.2";
const LISTEN_PORT = 8080;

// Answers GET with "ok", prints one line per request; exits when its stdin closes (the benchmark
// ended, however it ended), so it never outlives it.
const SERVER_PY = String.raw`
import http.server, os, sys, threading

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("hit", flush=True)

    def log_message(self, *args):
        pass

s = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
print("listening", flush=True)
s.serve_forever()
`;

export interface OwnNetns {
  /** The namespace proxywall runs in. */
  name: string;
  /** The URL a request from inside the sandbox goes to (through the proxy). */
  url: string;
  /** Requests the listener has answered so far. */
  hits(): number;
  /** `pw` run inside this namespace: `nsenter --net=... PW` (nsenter execs it: same pid). */
  wrap(pw: Proxywall): Proxywall;
  /** `run` options that let the proxy serve the listener (see allowArgs). */
  allowArgs(pw: Proxywall): string[];
  /** Stops the listener and removes the namespace; returns what could not be removed. */
  close(): Promise<string[]>;
}

/**
 * `--allow ADDR:PORT` where `run` has a policy (`--allow`): its guard refuses private addresses
 * such as the listener's unless an allow rule names them. Older `run`s serve any destination.
 */
function allowArgs(pw: Proxywall): string[] {
  const help = Bun.spawnSync([...pw.argv, "run", "--help"], { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  return (help.stdout.toString() + help.stderr.toString()).includes("--allow=") ? ["--allow", `${LISTEN_ADDR}:${LISTEN_PORT}`] : [];
}

/** Makes the two namespaces and the veth pair between them, and starts the listener; removes all on failure. */
export async function startOwnNetns(python: string, leftovers: Leftovers): Promise<OwnNetns> {
  const id = randomId();
  const [name, srv] = [`pwbench-${id}`, `pwbench-${id}-srv`];
  let server: Bun.Subprocess<"pipe", "pipe", "pipe"> | null = null;
  const close = async (): Promise<string[]> => {
    if (server) {
      server.stdin.end();
      const quit = await Promise.race([server.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
      if (!quit) server.kill("SIGKILL");
      await server.exited;
    }
    return removeNetns([srv, name]);
  };
  try {
    makeNetnsPair({ ns: name, veth: "pwb0", addr: OWN_ADDR }, { ns: srv, veth: "pwb1", addr: LISTEN_ADDR }, (ns) => leftovers.track(ns));
    server = Bun.spawn([...enter(srv), python, "-c", SERVER_PY, LISTEN_ADDR, String(LISTEN_PORT)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    let hits = 0;
    const { promise: listening, resolve } = Promise.withResolvers<boolean>();
    void readLines(server.stdout, (line) => (line === "listening" ? resolve(true) : line === "hit" ? hits++ : undefined));
    void server.exited.then(() => resolve(false));
    const up = await Promise.race([listening, Bun.sleep(10_000).then(() => false)]);
    if (!up) throw new Error(`the listener in ${name} did not start: ${(await Promise.race([new Response(server.stderr).text(), Bun.sleep(1000).then(() => "")])).trim()}`);
    return { name, url: `http://${LISTEN_ADDR}:${LISTEN_PORT}/`, hits: () => hits, wrap: (pw) => ({ name: pw.name, argv: [...enter(name), ...pw.argv] }), allowArgs, close };
  } catch (e) {
    await close();
    throw e;
  }
}
