// Benchmark of `proxywall report`: writes a 100,000-line event file (four sandboxes mixed, a
// realistic mix: bypass attempts by a few dozen programs under shells and runtimes, proxied
// requests to a few hundred hosts with some refused, periodic summaries and totals, degraded
// parts), then times `report` on it in each format (best of 3 runs, wall clock and CPU), with peak
// RSS (getrusage). Then constant memory: peak RSS at 10,000 lines and at 100,000 lines side by side
// (target: the larger at most 1.2 times the smaller). No root needed; nothing leaves this machine.
//
//   node_modules/.bin/bun bench/report.ts [--lines N] [--runs N] [--write FILE]
//
// --write FILE writes the input there and exits (to profile `report` on it).
import { writeFileSync } from "node:fs";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { parseEventLine } from "../src/report/aggregate.ts";
import { tempDir } from "../test/support/temp.ts";
import { mulberry32 } from "../test/support/prng.ts";
import { BUN, flag, ROOT, SRC_MAIN, table } from "./support.ts";

const LINES = flag("--lines", 100_000, 100, 100_000_000);
const RUNS = flag("--runs", 3, 1, 100);
const TARGET_S = 1;
const TARGET_RSS_RATIO = 1.2;

const rnd = mulberry32(0x5e9047);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const SANDBOXES = ["5419c89a", "0f1e2d3c", "deadbeef", "a1b2c3d4"];
const RUNTIMES = ["/usr/bin/curl", "/usr/bin/python3.11", "/usr/local/bin/node", "/usr/bin/java", "/usr/local/go/bin/go", "/usr/bin/wget", "/usr/bin/git", "/usr/bin/apt-get"];
const SHELLS = ["/usr/bin/dash", "/usr/bin/bash", "/usr/bin/make", "/usr/local/bin/npm"];
const HINT_TCP = "TCP connection that ignored the proxy: make the client honour HTTPS_PROXY/HTTP_PROXY. Node: NODE_USE_ENV_PROXY=1 (Node 24+) or a proxy agent; Java: -Dhttps.proxyHost=HOST -Dhttps.proxyPort=PORT (and http.*); gRPC: GRPC_PROXY as an http:// URL; Go, curl, Python requests, pip: honour HTTPS_PROXY already, check NO_PROXY";
const HINT_DNS = "DNS lookup over UDP: DNS must go through the proxy. Let the client resolve through the proxy (HTTPS_PROXY/CONNECT with a host name, socks5h, curl --proxy) instead of the local resolver; check /etc/resolv.conf and any hard-coded DNS server";
const OUTCOMES = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "connect_failed", "upstream_error"];

let clock = Date.parse("2026-11-29T14:45:00.000Z");
const ts = () => new Date((clock += int(20))).toISOString();

/** A line as the schema in this checkout wants it: fields a newer schema added (nullable) as null. */
function line(e: Record<string, unknown>): string {
  const parsed = parseEventLine(JSON.stringify(e));
  if (typeof parsed === "string") throw new Error(`generated line is not valid: ${parsed}`);
  return JSON.stringify(parsed);
}

function bypass(sandbox: string, pid: number): string {
  const exe = pick(RUNTIMES);
  const dns = rnd() < 0.2;
  const proto = dns || rnd() < 0.1 ? "udp" : "tcp";
  const ancestors = Array.from({ length: 1 + int(3) }, () => ({ pid: 1000 + int(5000), exe: pick(SHELLS) }));
  return line({
    v: 1, event: "bypass_detect", ts: ts(), sandbox, action: "reject", proto, family: "ipv4",
    src_addr: "10.200.0.2", src_port: 30000 + int(30000), dst_addr: `198.51.100.${1 + int(60)}`, dst_port: dns ? 53 : pick([80, 443, 8080, 9418]),
    uid: 0, gid: 0, out_if: null,
    process: { resolved: true, pid, exe, cmdline: [exe.split("/").pop()!, "-sS", `https://service-${int(100)}.example/api/v1/items?page=${int(50)}`], uid: 0, start_time: ts(), ancestors, also_held_by: [] },
    dns_query: dns ? `service-${int(100)}.example` : null, reason: "direct connection bypassed HTTP CONNECT proxy",
    hint: dns ? HINT_DNS : HINT_TCP, source: pick(["nfqueue", "nflog"]), log_time: null,
  });
}

function proxy(sandbox: string): string {
  const outcome = pick(OUTCOMES);
  const method = rnd() < 0.7 ? "CONNECT" : "GET";
  return line({
    v: 1, event: "proxy_connect", ts: ts(), sandbox, method, client_addr: "127.0.0.1", client_port: 30000 + int(30000),
    dst_host: `host-${int(300)}.example.org`, dst_port: method === "CONNECT" ? 443 : 80, status: outcome === "ok" ? 200 : 502,
    bytes_up: outcome === "ok" ? int(100_000) : 0, bytes_down: outcome === "ok" ? int(5_000_000) : 0, duration_ms: int(3000) / 10,
    outcome, error: outcome === "ok" ? null : "connecting to host: ECONNREFUSED",
  });
}

function events(n: number): string {
  const out: string[] = [];
  for (const s of SANDBOXES) {
    out.push(line({ v: 1, event: "degraded", ts: ts(), sandbox: s, component: "privileges", missing: "CMD runs as root and keeps CAP_NET_ADMIN inside its namespace, so it could delete the rules", fix: "pass --user UID[:GID] to run CMD without privileges", still_protected: "the rules hold as long as CMD does not remove them" }));
    out.push(line({ v: 1, event: "sandbox_ready", ts: ts(), sandbox: s, netns: `pw-${s}`, sandbox_ipv4: "10.200.0.2", sandbox_ipv6: "fd70:7077::2", proxy: { url: "http://127.0.0.1:3128", port: 3128, builtin: true }, backend: "nft", log: "nflog", monitor: "nflog", detection: "verified", degraded: ["privileges"], setup_ms: 80.5 }));
  }
  let bypasses = 0;
  while (out.length < n - 2 * SANDBOXES.length) {
    const s = pick(SANDBOXES);
    const r = rnd();
    if (r < 0.6) {
      out.push(bypass(s, 2000 + int(20_000)));
      bypasses++;
    } else if (r < 0.98) out.push(proxy(s));
    else if (r < 0.99) out.push(line({ v: 1, event: "bypass_summary", ts: ts(), sandbox: s, proto: "tcp", dst_addr: "198.51.100.7", dst_port: 443, exe: "/usr/bin/curl", count: 1 + int(100), first_seen: ts(), last_seen: ts(), final: false }));
    else out.push(line({ v: 1, event: "bypass_totals", ts: ts(), sandbox: s, tcp: bypasses, udp: int(100), other: 0, events: bypasses, lost: 0, final: false }));
  }
  for (const s of SANDBOXES) {
    out.push(line({ v: 1, event: "sandbox_closed", ts: ts(), sandbox: s, exit_code: 0, cmd_exit_code: 0, cmd_signal: null, duration_ms: 60_000, cleanup: [] }));
  }
  void v;
  void EventLine;
  return `${out.slice(0, n).join("\n")}\n`;
}

interface Result {
  seconds: number;
  cpuSeconds: number;
  maxRss: number;
  bytes: number;
}

function runOnce(file: string, format: string): Result {
  const t0 = performance.now();
  const p = Bun.spawnSync([BUN, SRC_MAIN, "report", "--format", format, file], { stdout: "pipe", stderr: "pipe", cwd: ROOT });
  const seconds = (performance.now() - t0) / 1000;
  if (p.exitCode !== 0) throw new Error(`report --format ${format} failed (${p.exitCode}): ${p.stderr.toString()}`);
  return { seconds, cpuSeconds: Number(p.resourceUsage.cpuTime.total) / 1e6, maxRss: p.resourceUsage.maxRSS, bytes: p.stdout.length };
}

const best = (rs: Result[]) => rs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

const WRITE_AT = process.argv.indexOf("--write");
if (WRITE_AT !== -1) {
  writeFileSync(process.argv[WRITE_AT + 1]!, events(LINES));
  process.exit(0);
}

using dir = tempDir("pw-bench-report-");
const big = dir.path("events-big.jsonl");
const small = dir.path("events-small.jsonl");
// The inputs are written by child processes: a child's peak RSS (getrusage) starts from its
// parent's at spawn, so this process stays small.
for (const [file, n] of [[big, LINES], [small, Math.floor(LINES / 10)]] as const) {
  const w = Bun.spawnSync([BUN, import.meta.path, "--lines", String(n), "--write", file], { stdout: "inherit", stderr: "inherit" });
  if (w.exitCode !== 0) throw new Error(`writing ${file} failed`);
}
console.log(`input: ${LINES.toLocaleString("en-US")} lines, ${mib(Bun.file(big).size)}; ${RUNS} runs per format, best shown`);

const rows = [["format", "lines", "wall s", "cpu s", "peak RSS", "output"]];
const peaks: Record<string, [number, number]> = {};
let slowest = 0;
for (const format of ["markdown", "html", "text"]) {
  const rs = Array.from({ length: RUNS }, () => runOnce(big, format));
  const b = best(rs);
  slowest = Math.max(slowest, b.seconds);
  const s = best(Array.from({ length: RUNS }, () => runOnce(small, format)));
  peaks[format] = [s.maxRss, Math.max(...rs.map((r) => r.maxRss))];
  rows.push([format, LINES.toLocaleString("en-US"), b.seconds.toFixed(3), b.cpuSeconds.toFixed(3), mib(b.maxRss), `${(b.bytes / 1024).toFixed(1)} KiB`]);
  rows.push([format, Math.floor(LINES / 10).toLocaleString("en-US"), s.seconds.toFixed(3), s.cpuSeconds.toFixed(3), mib(s.maxRss), `${(s.bytes / 1024).toFixed(1)} KiB`]);
}
console.log(table(rows));
console.log("");
for (const [format, [a, b]] of Object.entries(peaks)) {
  const ratio = b / a;
  console.log(`constant memory, ${format}: peak RSS ${mib(a)} at ${Math.floor(LINES / 10).toLocaleString("en-US")} lines, ${mib(b)} at ${LINES.toLocaleString("en-US")} lines: ${ratio.toFixed(2)}x (target <= ${TARGET_RSS_RATIO}x) ${ratio <= TARGET_RSS_RATIO ? "ok" : "OVER"}`);
}
console.log(`slowest format: ${slowest.toFixed(3)} s wall for ${LINES.toLocaleString("en-US")} lines (target < ${TARGET_S} s) ${slowest < TARGET_S ? "ok" : "OVER"}`);
