// The processes of bench/policy.ts's proxied part, each started by bench/policy-proxy.ts inside a
// namespace that bench made (never the machine's own):
//   upstream ADDR FILE   an HTTP server on ADDR: GET /small answers "ok", GET /file sends FILE
//   proxy UPSTREAM_CIDR RULES...  two built-in proxies (startProxy + policyAdmission) on 127.0.0.1:
//                        one whose policy is only the rule that allows UPSTREAM_CIDR, one with
//                        that rule among RULES-1 others
//   client UPSTREAM PROXY_A PROXY_B RELAY N BYTES RUNS PIDS   N requests through each proxy,
//                        interleaved, and direct; then the file directly, through a CONNECT tunnel
//                        and through the bare relay (bare-relay.py), with the CPU time each of PIDS
//                        (the proxies, the upstream, the relay) and the client spent on each
//                        download, and the machine's; one JSON line out
// Each prints one line when ready (or its result) and exits when its stdin closes, so none
// outlives the bench however it ends.
import { readFileSync } from "node:fs";
import net from "node:net";
import { networkInterfaces } from "node:os";
import { policyAdmission } from "../src/proxy/admission.ts";
import { startProxy } from "../src/proxy/http-proxy.ts";
import { loadPolicy, type Policy } from "../src/policy/index.ts";
import { decisionMix } from "./policy-mix.ts";

function exitWithStdin(): void {
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
}

function upstream(addr: string, file: string): void {
  const server = Bun.serve({
    hostname: addr,
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/small") return new Response("ok\n");
      if (path === "/file") return new Response(Bun.file(file));
      return new Response("not found\n", { status: 404 });
    },
  });
  console.log(JSON.stringify({ port: server.port }));
  exitWithStdin();
}

const hostAddresses = () => Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));

async function proxy(rule: string, rules: number): Promise<void> {
  const one = loadPolicy({ allow: [rule], deny: [], files: [], mode: "enforce" }, { hostAddresses });
  if (typeof one === "string") throw new Error(one);
  // decisionMix adds two rules of its own to the ones it makes: with `rule`, RULES in all.
  const many = (await decisionMix(rules - 3, [rule])).policy;
  const events = { ok: 0, other: 0 };
  // Who asks: nobody is looked up (the same for both proxies; the sandbox's lookup is sock_diag).
  const start = (p: Policy) =>
    startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: "bench-policy", onEvent: (e) => void (e.outcome === "ok" ? events.ok++ : events.other++), admit: policyAdmission(p) });
  const [a, b] = [await start(one), await start(many)];
  console.log(JSON.stringify({ ports: [a.ports[0], b.ports[0]], rules: [one.allow.count + one.deny.count, many.allow.count + many.deny.count] }));
  process.stdin.on("data", () => {});
  process.stdin.on("end", async () => {
    await Promise.all([a.close(), b.close()]);
    console.error(JSON.stringify({ events }));
    process.exit(0);
  });
}

/** One request on a fresh connection: `head` to host:port, read to the end; ms, or an error. */
function request(port: number, host: string, head: string, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = "";
    const s = net.connect({ port, host, noDelay: true }, () => s.write(head));
    const timer = setTimeout(() => s.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    s.setEncoding("latin1");
    s.on("data", (d: string) => (got += d));
    s.on("error", (e) => (clearTimeout(timer), reject(e)));
    s.on("end", () => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      s.destroy();
      if (!got.startsWith("HTTP/1.1 200") || !got.endsWith("ok\n")) reject(new Error(`unexpected answer: ${JSON.stringify(got.slice(0, 120))}`));
      else resolve(ms);
    });
  });
}

/** The file over one connection, through a CONNECT tunnel when `tunnel` is set: MiB/s. */
function download(port: number, host: string, tunnel: string | null, upstreamHostPort: string, bytes: number, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, noDelay: true });
    const timer = setTimeout(() => s.destroy(new Error(`not done within ${timeoutMs} ms`)), timeoutMs);
    let phase: "connect" | "head" | "body" = tunnel ? "connect" : "head";
    let pending = Buffer.alloc(0);
    let body = 0;
    let t0 = 0;
    const get = `GET /file HTTP/1.1\r\nHost: ${upstreamHostPort}\r\nConnection: close\r\n\r\n`;
    s.on("connect", () => {
      t0 = performance.now();
      s.write(tunnel ? `CONNECT ${tunnel} HTTP/1.1\r\nHost: ${tunnel}\r\n\r\n` : get);
    });
    s.on("data", (d: Buffer) => {
      if (phase === "body") {
        body += d.length;
      } else {
        pending = Buffer.concat([pending, d]);
        const end = pending.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = pending.subarray(0, end).toString("latin1");
        if (!/^HTTP\/1\.1 200/.test(head)) return s.destroy(new Error(`unexpected answer: ${head.split("\r\n")[0]}`));
        const rest = pending.subarray(end + 4);
        pending = Buffer.alloc(0);
        if (phase === "connect") {
          phase = "head";
          s.write(get);
          if (rest.length > 0) s.emit("data", rest);
          return;
        }
        phase = "body";
        body = rest.length;
      }
      if (body >= bytes) {
        const s_ = (performance.now() - t0) / 1000;
        clearTimeout(timer);
        s.destroy();
        resolve(bytes / 1048576 / s_);
      }
    });
    s.on("error", (e) => (clearTimeout(timer), reject(e)));
    s.on("close", () => (clearTimeout(timer), reject(new Error(`closed after ${body} of ${bytes} bytes`))));
  });
}

/** CPU seconds a process spent so far (user + system, all its threads), from /proc/PID/stat. */
function cpuSeconds(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15) in USER_HZ ticks
}

/** CPU seconds the whole machine spent busy so far (every state but idle and iowait), from /proc/stat. */
function machineBusySeconds(): number {
  const t = readFileSync("/proc/stat", "latin1").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  return (t.reduce((a, b) => a + b, 0) - t[3]! - t[4]!) / 100;
}

type CpuRun = { client: number; proxy: number; upstream: number; machine: number };

/** `f`, and the CPU seconds the client, the proxy, the upstream and the machine spent during it. */
async function withCpu<T>(pids: { proxy: number; upstream: number }, f: () => Promise<T>): Promise<[T, CpuRun]> {
  const read = () => ({ client: cpuSeconds("self"), proxy: cpuSeconds(pids.proxy), upstream: cpuSeconds(pids.upstream), machine: machineBusySeconds() });
  const a = read();
  const r = await f();
  const b = read();
  return [r, { client: b.client - a.client, proxy: b.proxy - a.proxy, upstream: b.upstream - a.upstream, machine: b.machine - a.machine }];
}

async function client(upstreamHostPort: string, portA: number, portB: number, relayPort: number, n: number, fileBytes: number, fileRuns: number, pids: { proxy: number; upstream: number; relay: number }): Promise<void> {
  const [upHost, upPort] = [upstreamHostPort.slice(0, upstreamHostPort.lastIndexOf(":")), Number(upstreamHostPort.slice(upstreamHostPort.lastIndexOf(":") + 1))];
  const viaProxy = `GET http://${upstreamHostPort}/small HTTP/1.1\r\nHost: ${upstreamHostPort}\r\n\r\n`;
  const direct = `GET /small HTTP/1.1\r\nHost: ${upstreamHostPort}\r\nConnection: close\r\n\r\n`;
  const ms = { direct: [] as number[], one: [] as number[], many: [] as number[] };
  // Warm-up (the JIT, the upstream, the proxies), then the three interleaved, so that a change of
  // load on the machine touches all three alike.
  for (let i = 0; i < Math.min(200, n); i++) await Promise.all([request(portA, "127.0.0.1", viaProxy), request(portB, "127.0.0.1", viaProxy)]);
  for (let i = 0; i < n; i++) {
    ms.direct.push(await request(upPort, upHost, direct));
    ms.one.push(await request(portA, "127.0.0.1", viaProxy));
    ms.many.push(await request(portB, "127.0.0.1", viaProxy));
  }
  const mibs = { direct: [] as number[], tunnel: [] as number[], bare: [] as number[] };
  const cpu = { direct: [] as CpuRun[], tunnel: [] as CpuRun[], bare: [] as CpuRun[] };
  const ways = {
    direct: () => withCpu(pids, () => download(upPort, upHost, null, upstreamHostPort, fileBytes)),
    tunnel: () => withCpu(pids, () => download(portB, "127.0.0.1", upstreamHostPort, upstreamHostPort, fileBytes)),
    bare: () => withCpu({ proxy: pids.relay, upstream: pids.upstream }, () => download(relayPort, "127.0.0.1", null, upstreamHostPort, fileBytes)),
  };
  for (let i = 0; i < fileRuns; i++) {
    for (const way of ["direct", "tunnel", "bare"] as const) {
      const [mib, c] = await ways[way]();
      mibs[way].push(mib);
      cpu[way].push(c);
    }
  }
  console.log(JSON.stringify({ ms, mibs, cpu }));
  process.exit(0);
}

if (import.meta.main) {
  const [role, ...a] = process.argv.slice(2);
  if (role === "upstream") upstream(a[0]!, a[1]!);
  else if (role === "proxy") await proxy(a[0]!, Number(a[1]));
  else if (role === "client") {
    const [n, bytes, runs, proxyPid, upstreamPid, relayPid] = a.slice(4).map(Number) as [number, number, number, number, number, number];
    await client(a[0]!, Number(a[1]), Number(a[2]), Number(a[3]), n, bytes, runs, { proxy: proxyPid, upstream: upstreamPid, relay: relayPid });
  }
  else throw new Error(`policy-roles: unknown role ${role}`);
}
