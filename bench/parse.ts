// Benchmark of `proxywall parse`: 1,000,000 mixed kernel-log lines (10% proxywall bypass records in
// all four envelope formats, 90% other kernel chatter), parsed by the compiled binary and by
// `bun src/main.ts`, 3 runs each, pinned to one core when taskset exists. Prints lines/s (best and
// median wall clock, and per CPU second, which other load on the machine disturbs less), the event
// count, and peak RSS (getrusage). Then constant memory: the binary on a tenth of the input and on
// three times the input (100,000 and 3,000,000 lines by default), both through a pipe on standard
// input, side by side: lines/s, peak RSS, and the ratio of the two peaks (target: at most 1.2).
// The input is written to a temporary directory and deleted at the end.
//
//   node_modules/.bin/bun bench/parse.ts [--lines N] [--runs N] [--bin PATH]
//
// --bin measures another compiled proxywall instead of one built from this checkout (to compare
// with an older commit: `git archive COMMIT | tar -x -C DIR`, link node_modules into DIR, and run
// `bun build.ts --target linux-x64 --outdir DIR/dist` there).
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { mulberry32 } from "../test/support/prng.ts";
import { compiledProxywall } from "./compiled.ts";
import { BUN, flag, ROOT } from "./support.ts";

const TARGET_LINES_PER_S = 1_000_000;

const LINES = flag("--lines", 1_000_000, 1, 100_000_000);
const RUNS = flag("--runs", 3, 1, 100);
const BIN_AT = process.argv.indexOf("--bin");
const BIN = BIN_AT === -1 ? null : process.argv[BIN_AT + 1];
if (BIN_AT !== -1 && (!BIN || !existsSync(BIN))) throw new Error("--bin needs the path of a compiled proxywall");
/** The constant-memory check: peak RSS on 3x the input over peak RSS on a tenth, at most this. */
const TARGET_RSS_RATIO = 1.2;

// ---- input -------------------------------------------------------------------------------------

const rnd = mulberry32(0x5eed);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const hex4 = () => int(0x10000).toString(16).padStart(4, "0");

const SANDBOXES = ["abcd1234", "0f1e2d3c", "deadbeef", "12345678"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const HOSTS = ["build-07", "ci-runner", "web1"];

let seq = 12000;
let uptimeUs = 1_180_427_454;

type Envelope = "kmsg" | "dmesg" | "notime" | "syslog";
const ENVELOPES: readonly Envelope[] = ["kmsg", "dmesg", "notime", "syslog"];

function envelope(kind: Envelope, message: string, priority = 4): string {
  uptimeUs += 1 + int(50_000);
  const us = String(uptimeUs);
  const secs = `${us.slice(0, -6)}.${us.slice(-6)}`;
  switch (kind) {
    case "kmsg":
      return `${priority},${seq++},${us},-;${message}`;
    case "dmesg":
      return `[${secs.padStart(12, " ")}] ${message}`;
    case "notime":
      return message;
    case "syslog": {
      const day = String(1 + int(28)).padStart(2, " ");
      const t = `${String(int(24)).padStart(2, "0")}:${String(int(60)).padStart(2, "0")}:${String(int(60)).padStart(2, "0")}`;
      return `${pick(MONTHS)} ${day} ${t} ${pick(HOSTS)} kernel: ${message}`;
    }
  }
}

const ipv6Full = (head: string) => `${head}:${hex4()}:${hex4()}:${hex4()}:${hex4()}`;

/** A netfilter LOG body (after the prefix), in the exact shape the kernel prints. */
function logBody(v6: boolean, tcp: boolean, dport: number, withUid = true): string {
  // The sandbox's own addresses (every sandbox has the same ones: there is no host side).
  const src = v6 ? "fd70:7077:0000:0000:0000:0000:0000:0002" : "10.200.0.2";
  const dst = v6
    ? pick(["2001:4860:4860:0000:0000:0000:0000:8888", ipv6Full("2001:0db8:0000:0000")])
    : pick(["8.8.8.8", "198.51.100.7", "203.0.113.9", `100.64.${int(256)}.${int(256)}`]);
  const spt = 32768 + int(28000);
  const ip = v6
    ? `LEN=${60 + int(40)} TC=0 HOPLIMIT=64 FLOWLBL=${int(1 << 20)}`
    : `LEN=${40 + int(40)} TOS=0x00 PREC=0x00 TTL=64 ID=${int(65536)} DF`;
  const l4 = tcp
    ? `PROTO=TCP SPT=${spt} DPT=${dport} WINDOW=64240 RES=0x00 SYN URGP=0`
    : `PROTO=UDP SPT=${spt} DPT=${dport} LEN=${8 + int(60)}`;
  const ids = withUid ? ` UID=${pick([0, 1000, 65534])} GID=${pick([0, 1000, 65534])}` : "";
  return `IN= OUT=pw0 SRC=${src} DST=${dst} ${ip} ${l4}${ids} `;
}

function bypassLine(): string {
  const v6 = rnd() < 0.5;
  const tcp = rnd() < 0.6;
  const dport = tcp ? pick([443, 80, 8080, 53, 22]) : pick([53, 443, 123, 5353]);
  return envelope(pick(ENVELOPES), `proxywall:${pick(SANDBOXES)}:${logBody(v6, tcp, dport)}`);
}

const OTHER_MESSAGES: readonly (() => string)[] = [
  // netfilter LOG lines of other rulesets (not proxywall's prefix)
  () => `[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.${int(256)} DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=${int(65536)} DF PROTO=TCP SPT=${1024 + int(60000)} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 `,
  () => `iptables-drop: IN=docker0 OUT=eth0 PHYSIN=veth${hex4()} SRC=172.17.0.${int(256)} DST=8.8.8.8 LEN=${40 + int(40)} TOS=0x00 PREC=0x00 TTL=63 ID=${int(65536)} PROTO=UDP SPT=${1024 + int(60000)} DPT=53 LEN=${20 + int(40)} `,
  () => `nft-in6: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:${hex4()} DST=fe80:0000:0000:0000:0000:0000:0000:0001 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 `,
  // near misses: the word proxywall without a valid sandbox prefix
  () => `proxywall: starting sandbox ${hex4()}${hex4()} (pid ${int(1 << 22)})`,
  // audit
  () => `audit: type=1400 audit(${1700000000 + int(1e6)}.${int(1000)}:${int(1e5)}): apparmor="DENIED" operation="open" class="file" profile="snap.firefox.firefox" name="/proc/${int(1 << 15)}/cgroup" pid=${int(1 << 15)} comm="firefox" requested_mask="r" denied_mask="r" fsuid=1000 ouid=1000`,
  () => `audit: type=1325 audit(${1700000000 + int(1e6)}.${int(1000)}:${int(1e5)}): table=filter family=2 entries=${int(200)} op=nft_register_rule pid=${int(1 << 15)} subj=unconfined comm="iptables-nft"`,
  // usb
  () => `usb 1-${1 + int(4)}: new high-speed USB device number ${int(128)} using xhci_hcd`,
  () => `usb 1-${1 + int(4)}: New USB device found, idVendor=${hex4()}, idProduct=${hex4()}, bcdDevice= 1.00`,
  () => `usb 1-${1 + int(4)}: Product: USB2.0 Hub`,
  () => `usb-storage 2-1:1.0: USB Mass Storage device detected`,
  // net, block, fs, mm
  () => `e1000e 0000:00:1f.6 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx`,
  () => `IPv6: ADDRCONF(NETDEV_CHANGE): vs-${hex4()}: link becomes ready`,
  () => `br-${hex4()}${hex4()}: port ${1 + int(8)}(veth${hex4()}) entered forwarding state`,
  () => `EXT4-fs (nvme0n1p${1 + int(3)}): mounted filesystem ${hex4()}${hex4()}-${hex4()} r/w with ordered data mode. Quota mode: none.`,
  () => `nvme nvme0: ${int(32)}/0/0 default/read/poll queues`,
  () => `Out of memory: Killed process ${int(1 << 22)} (chrome) total-vm:${int(1e7)}kB, anon-rss:${int(1e6)}kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:${int(1e4)}kB oom_score_adj:300`,
  () => `TCP: request_sock_TCP: Possible SYN flooding on port ${int(65536)}. Sending cookies.  Check SNMP counters.`,
  () => `traps: node[${int(1 << 22)}] general protection fault ip:${hex4()}${hex4()} sp:7ffd${hex4()}${hex4()} error:0 in node[${hex4()}000+${hex4()}000]`,
  () => `docker0: port 1(veth${hex4()}) entered blocking state`,
];

function otherLine(): string[] {
  const kind = pick(ENVELOPES);
  const line = envelope(kind, pick(OTHER_MESSAGES)(), pick([3, 4, 5, 6, 6, 6]));
  // /dev/kmsg device messages carry continuation lines.
  if (kind === "kmsg" && rnd() < 0.2) return [line, ` SUBSYSTEM=usb`, ` DEVICE=c189:${int(256)}`];
  return [line];
}

/** Writes `lines` lines (exactly), a tenth of them bypass records; returns the bypass count. */
async function generate(file: string, lines: number): Promise<number> {
  const w = Bun.file(file).writer({ highWaterMark: 1 << 20 });
  let written = 0;
  let bypass = 0;
  while (written < lines) {
    if (written % 10 === 0) {
      w.write(bypassLine() + "\n");
      bypass++;
      written++;
      continue;
    }
    for (const l of otherLine()) {
      if (written >= lines || written % 10 === 0) break;
      w.write(l + "\n");
      written++;
    }
  }
  await w.end();
  return bypass;
}

// ---- runs --------------------------------------------------------------------------------------

const TASKSET = ["/usr/bin/taskset", "/bin/taskset"].find((p) => existsSync(p));
const pinned = (argv: string[]) => (TASKSET ? [TASKSET, "-c", "0", ...argv] : argv);

// Peak RSS must be the parser's own. Linux keeps a process's ru_maxrss across execve, and Bun
// spawns with vfork, so the figure getrusage gives for a child Bun started is at least this
// benchmark's own peak (75-80 MiB after generating the input): it hid the parser's 62-67 MiB.
// A small python3 forks and waits for the measured program instead, and reports that child's
// rusage (its floor is python's own ~10 MiB) and wall time from fork to exit (python's own start-up
// left out). Without python3, getrusage of the child, flagged.
const PYTHON = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].find((p) => existsSync(p)) ?? Bun.which("python3");
const RUSAGE_OF_CHILD = [
  "import os, resource, sys, time",
  "t0 = time.monotonic()",
  "pid = os.fork()",
  "if pid == 0: os.execv(sys.argv[1], sys.argv[1:])",
  "_, status = os.waitpid(pid, 0)",
  "r = resource.getrusage(resource.RUSAGE_CHILDREN)",
  "os.write(2, b'bench-rusage %d %.6f %.6f\\n' % (r.ru_maxrss, r.ru_utime + r.ru_stime, time.monotonic() - t0))",
  "sys.exit(os.waitstatus_to_exitcode(status))",
].join("\n");
const measured = (argv: string[]) => (PYTHON ? [PYTHON, "-c", RUSAGE_OF_CHILD, ...argv] : argv);
const RSS_NOTE = PYTHON ? "" : " (python3 not found: each includes this benchmark's own peak)";

/** Peak RSS (bytes), CPU and wall seconds of the measured program, from `measured`'s stderr line. */
function ownUsage(stderr: string, usage: { maxRSS: number; cpuTime: { total: number | bigint } }, seconds: number) {
  const m = /bench-rusage (\d+) ([\d.]+) ([\d.]+)/.exec(stderr);
  if (m) return { maxRss: Number(m[1]) * 1024, cpuSeconds: Number(m[2]), seconds: Number(m[3]) };
  if (PYTHON) throw new Error(`no rusage line from the python3 wrapper: ${stderr}`);
  return { maxRss: usage.maxRSS, cpuSeconds: Number(usage.cpuTime.total) / 1e6, seconds };
}

interface Run {
  /** Wall time, start to exit. */
  seconds: number;
  /** User + system CPU time of the process (less disturbed by other load on the machine). */
  cpuSeconds: number;
  /** Peak resident set size (getrusage ru_maxrss of the program alone: see `measured`), bytes. */
  maxRss: number;
  stats: Record<string, number>;
}

function runOnce(cmd: string[], file: string): Run {
  // stdout goes to /dev/null; --stats puts the counts on stderr without adding work to the loop.
  const t0 = performance.now();
  const p = Bun.spawnSync(measured(pinned([...cmd, "parse", file, "--stats"])), { stdout: "ignore", stderr: "pipe", cwd: ROOT });
  const seconds = (performance.now() - t0) / 1000;
  const err = p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} parse failed (${p.exitCode}): ${err}`);
  const m = /parse stats (\{.*\})/.exec(err);
  if (!m) throw new Error(`no stats line on stderr: ${err}`);
  return { ...ownUsage(err, p.resourceUsage, seconds), stats: JSON.parse(m[1]!) as Record<string, number> };
}

/** The binary reading `times` copies of the file from a pipe on standard input. */
async function runStdin(cmd: string[], file: string, times: number): Promise<Run & { lines: number }> {
  const t0 = performance.now();
  const p = Bun.spawn(measured(pinned([...cmd, "parse", "-", "--stats"])), { stdin: "pipe", stdout: "ignore", stderr: "pipe", cwd: ROOT });
  const stderr = new Response(p.stderr).text();
  for (let i = 0; i < times; i++) {
    for await (const chunk of Bun.file(file).stream()) {
      p.stdin.write(chunk);
      await p.stdin.flush();
    }
  }
  await p.stdin.end();
  const code = await p.exited;
  const seconds = (performance.now() - t0) / 1000;
  const err = await stderr;
  const m = /parse stats (\{.*\})/.exec(err);
  const usage = p.resourceUsage();
  if (code !== 0 || !m || !usage) throw new Error(`${cmd.join(" ")} parse - failed (${code}): ${err}`);
  const stats = JSON.parse(m[1]!) as Record<string, number>;
  return { ...ownUsage(err, usage, seconds), stats, lines: stats.lines! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/**
 * Constant memory: once start-up and the JIT's tier-up are over, peak RSS must not grow with the
 * input. The small input once and the large one three times, both through a pipe, RUNS times each;
 * the peak is the highest of the runs.
 */
async function constantMemory(cmd: string[], small: string, large: string): Promise<void> {
  const rows: string[][] = [["compiled binary, stdin", "lines", "best lines/s", "lines/CPU-s", "peak RSS"]];
  const peaks: number[] = [];
  for (const [file, times] of [
    [small, 1],
    [large, 3],
  ] as const) {
    const runs: (Run & { lines: number })[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await runStdin(cmd, file, times));
    const lines = runs[0]!.lines;
    const peak = Math.max(...runs.map((r) => r.maxRss));
    peaks.push(peak);
    rows.push([
      "",
      fmt(lines),
      fmt(Math.max(...runs.map((r) => r.lines / r.seconds))),
      fmt(Math.max(...runs.map((r) => r.lines / r.cpuSeconds))),
      mib(peak),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  if (RSS_NOTE) console.log(`peak RSS${RSS_NOTE}`);
  const ratio = peaks[1]! / peaks[0]!;
  console.log(`peak RSS ratio, large / small input: ${ratio.toFixed(2)} (target at most ${TARGET_RSS_RATIO.toFixed(1)}): ${ratio <= TARGET_RSS_RATIO ? "met" : "NOT met"}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "pw-bench-"));
  const file = path.join(dir, "kernel.log");
  const small = path.join(dir, "kernel-tenth.log");
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const tg = performance.now();
    const bypass = await generate(file, LINES);
    await generate(small, Math.max(1, Math.floor(LINES / 10)));
    const mb = statSync(file).size / 1e6;
    console.log(`input: ${fmt(LINES)} lines (${mb.toFixed(1)} MB), ${fmt(bypass)} bypass records, generated in ${((performance.now() - tg) / 1000).toFixed(1)} s`);

    const compiled = BIN ? null : compiledProxywall(true);
    if (compiled) cleanups.push(compiled.cleanup);
    const bin = { cmd: compiled ? [...compiled.pw!.argv] : [BIN!] };
    console.log(`binary: ${compiled ? compiled.note : `${BIN} (--bin)`}`);
    console.log(`pinning: ${TASKSET ? "taskset -c 0" : "none (taskset not found)"}`);

    const contenders = [
      { name: "compiled binary", cmd: bin.cmd },
      { name: "bun src/main.ts", cmd: [BUN, "src/main.ts"] },
    ];
    const rows: string[][] = [["", "best lines/s", "median lines/s", "best s", "lines/CPU-s", "events", "peak RSS"]];
    let binBest = 0;
    for (const c of contenders) {
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i++) runs.push(runOnce(c.cmd, file));
      const rates = runs.map((r) => LINES / r.seconds);
      const best = Math.max(...rates);
      const rss = Math.max(...runs.map((r) => r.maxRss));
      if (c === contenders[0]) binBest = best;
      const events = runs[0]!.stats.events!;
      if (runs.some((r) => r.stats.events !== events)) throw new Error(`${c.name}: event count differs between runs`);
      if (events !== bypass) console.error(`bench: ${c.name} reported ${events} events, expected ${bypass}: ${JSON.stringify(runs[0]!.stats)}`);
      rows.push([
        c.name,
        fmt(best),
        fmt(median(rates)),
        Math.min(...runs.map((r) => r.seconds)).toFixed(3),
        fmt(LINES / Math.min(...runs.map((r) => r.cpuSeconds))),
        fmt(events),
        mib(rss),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));

    await constantMemory(bin.cmd, small, file);
    console.log(`target ${fmt(TARGET_LINES_PER_S)} lines/s for the compiled binary (best of ${RUNS}): ${binBest >= TARGET_LINES_PER_S ? "met" : "NOT met"}`);
  } finally {
    for (const c of cleanups) c();
  }
}

await main();
