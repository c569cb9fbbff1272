// proxywall under a flood of bypass attempts: its memory, its responsiveness as a proxy, and
// whether its totals add up, while processes inside the sandbox make about 10,000 rejected
// attempts per second for 10 seconds.
//
//   node_modules/.bin/bun bench/flood.ts [--rate 10000] [--secs 10] [--workers 4] [--nice 10]
//                                        [--compiled | --source-only] [--keep-events PATH]
//
// Needs root. Runs `proxywall run --summary-interval 2 --state-dir /run/proxywall-bench -- python3
// DRIVER` from source (bun src/main.ts), and then the same with the compiled
// dist/proxywall-linux-x64 where that is newer than src/ (--compiled builds one otherwise, into a
// temporary directory when dist's is stale; --source-only skips it), and prints the two side by
// side. Both run inside a namespace the benchmark makes (bench/own-netns.ts: `nsenter --net`), so
// that what the proxy connects to is a listener of the benchmark's, and nothing else. Events on
// stderr, read as they arrive; --keep-events PATH appends each, with its arrival time, to PATH.
//
// Inside the sandbox (CMD, root in the namespace) the driver
//   1. reads the fence's reject counters itself (iptables-save -c / nft -j list), as a baseline;
//   2. warms up for about a second: 20 TCP and 20 UDP attempts and two requests through the proxy;
//   3. starts W python3 workers, each making rate/W attempts per second for `secs` seconds (paced:
//      it catches up in batches when behind, and never runs past its time), half of them
//      non-blocking TCP connects (each socket kept open in a ring of 512 so a held SYN still has
//      its socket) and half UDP datagrams from one unbound socket, to 198.51.100.1-254 :443 and
//      203.0.113.1-254 :443 (rejected inside the namespace; nothing leaves it); each worker counts
//      what it made and what each call returned;
//      The workers run at nice 10 (--nice N to change; 0 for none), so that on a small machine
//      what the requests below measure is proxywall, not the request client waiting for a CPU;
//      the workers still get every CPU cycle nobody else wants.
//   4. meanwhile, every 500 ms, starts a GET of http://10.203.255.1:8080/ through the built-in
//      proxy (HTTP_PROXY, the door on the sandbox's own loopback), each in a thread of its own (so
//      a slow one does not delay the next), and times it (10 s timeout); the address is the
//      benchmark's listener in proxywall's own namespace, which the sandbox reaches only that way;
//   5. after the flood, settles for 2 s (four more requests), reads the counters and the kernel's
//      NFQUEUE statistics (/proc/net/netfilter/nfnetlink_queue: SYNs dropped from a full queue,
//      SYNs still waiting for proxywall's verdict) again and exits.
// The benchmark samples proxywall's VmRSS and CPU time (/proc/PID/status, /proc/PID/stat) every
// 250 ms and at each phase change the driver announces. "start" is the RSS when the flood starts,
// after sandbox_ready and the warm-up second (so first-use allocations are not counted as growth;
// the warm-up is too short for JIT tier-ups, which would count); "peak" the highest sample from
// then to the end, "end" the last sample, at the end of the settle time. Growth = (end - start) /
// start; target < 10%. Set BUN_JSC_useDFGJIT=1 BUN_JSC_useFTLJIT=1 in the benchmark's environment
// to measure proxywall with every JIT tier (it then does not restart itself; src/sys/jit-tiers.ts).
//
// Compared at the end: attempts the workers and the warm-up made (and the calls that returned the
// reject's error) vs the final bypass_totals line (proxywall reads it from the kernel counters) vs
// the driver's own reading of those counters vs the bypass_detect lines (limited by --log-rate
// 100/s per protocol; TCP has two limited steps: the NFQUEUE hold and the NFLOG log of what the
// hold's limit let past, 100/s with a burst of 200 each).
//
// Prints its figures; never fails on one. Exit 0 unless the benchmark itself broke (a run or the
// driver did not finish, proxywall failed, something was left behind).
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { leftBehind, Leftovers, namespacesNote } from "./cleanup.ts";
import { compiledProxywall } from "./compiled.ts";
import { checkLive, interrupted, runLive, type LiveResult } from "./live.ts";
import { startOwnNetns, type OwnNetns } from "./own-netns.ts";
import { flag, fmtMs, FROM_SOURCE, quantile, requireRootLinux, runArgv, STATE_DIR, systemTool, table, wallMs, type Event, type Proxywall } from "./support.ts";

const TARGET_GROWTH = 0.1;
const LOG_RATE = 100;
const SUMMARY_INTERVAL_S = 2;
const WARMUP_ATTEMPTS = 20;
const PROBE_TIMEOUT_S = 10;

const RATE = flag("--rate", 10_000, 10, 100_000);
const SECS = flag("--secs", 10, 2, 60);
const WORKERS = flag("--workers", 4, 1, 16);
const COMPILED = process.argv.includes("--compiled");
const SOURCE_ONLY = process.argv.includes("--source-only");
const NICE = flag("--nice", 10, 0, 19);
/** --keep-events PATH: every event line of every run, with the time it arrived, for a closer look. */
const KEEP_EVENTS = (() => {
  const i = process.argv.indexOf("--keep-events");
  return i === -1 ? null : (process.argv[i + 1] ?? null);
})();

// ---- inside the sandbox ---------------------------------------------------------------------------

const WORKER_PY = String.raw`
import errno, json, os, socket, sys, time

CFG = json.loads(sys.argv[1])
RATE, SECS, WID = CFG["rate"], CFG["secs"], CFG["id"]
if CFG["nice"]:
    os.nice(CFG["nice"])
NETS = ("198.51.100.", "203.0.113.")
RING = 512

ring = [None] * RING
ri = 0
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
made = {"tcp": 0, "udp": 0}
res = {"tcp": {}, "udp": {}}

def note(proto, code):
    r = res[proto]
    r[code] = r.get(code, 0) + 1

start = time.monotonic()
end = start + SECS
i = 0
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = int((now - start) * RATE)
    if i >= due:
        time.sleep(min(0.002, end - now))
        continue
    for _ in range(min(due - i, 100)):
        dst = (NETS[(i >> 1) & 1] + str(1 + (i >> 2) % 254), 443)
        if i & 1:
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex(dst)
                note("tcp", errno.errorcode.get(rc, str(rc)) if rc else "0")
                old = ring[ri]
                if old is not None:
                    old.close()
                ring[ri] = s
                ri = (ri + 1) % RING
            except OSError as e:
                note("tcp", errno.errorcode.get(e.errno, str(e.errno)))
            made["tcp"] += 1
        else:
            try:
                udp.sendto(b"proxywall flood bench", dst)
                note("udp", "0")
            except OSError as e:
                note("udp", errno.errorcode.get(e.errno, str(e.errno)))
            made["udp"] += 1
        i += 1
secs = time.monotonic() - start
for s in ring:
    if s is not None:
        s.close()
udp.close()
print(json.dumps({"id": WID, "secs": secs, "made": made, "res": res}), flush=True)
`;

const DRIVER_PY = String.raw`
import errno, json, os, socket, subprocess, sys, threading, time, urllib.request

CFG = json.loads(sys.argv[1])

LOCK = threading.Lock()

def out(**o):
    with LOCK:
        sys.stdout.write(json.dumps(o) + "\n")
        sys.stdout.flush()

def tool(name):
    for d in ("/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"):
        if os.access(d + name, os.X_OK):
            return d + name
    return None

def counters():
    """The fence's reject counters, read the way proxywall reads them (src/monitor/rule-counters.ts)."""
    nft = tool("nft")
    if nft:
        r = subprocess.run([nft, "-j", "list", "table", "inet", "proxywall"], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            t = {"tcp": 0, "udp": 0, "other": 0}
            for item in json.loads(r.stdout).get("nftables", []):
                rule = item.get("rule")
                if not rule or rule.get("chain") != "output" or not rule.get("comment"):
                    continue
                c = rule["comment"]
                kind = "tcp" if c.startswith("reject tcp bypass") else "udp" if c.startswith("reject udp bypass") else "other" if c == "everything else" else None
                for e in rule.get("expr", []):
                    if kind and "counter" in e:
                        t[kind] += e["counter"]["packets"]
            return t
    # x_tables: the legacy build's tools first (proxywall prefers them where the kernel has
    # legacy ip_tables), else the system's; the ones whose save shows the fence's chain rules.
    for flavour in ("-legacy", ""):
        t = xtables_counters("iptables%s-save" % flavour, "ip6tables%s-save" % flavour)
        if t is not None:
            return t
    return None

def xtables_counters(*saves):
    t = {"tcp": 0, "udp": 0, "other": 0}
    seen = False
    for save in saves:
        p = tool(save)
        if not p:
            return None
        r = subprocess.run([p, "-c", "-t", "filter"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return None
        for line in r.stdout.splitlines():
            if not line.startswith("[") or "] -A OUTPUT" not in line:
                continue
            n, rule = int(line[1:line.index(":")]), line[line.index("] ") + 2:]
            if "-j REJECT" in rule:
                if "-p tcp" in rule:
                    t["tcp"] += n
                elif "-p udp" in rule:
                    t["udp"] += n
            elif rule == "-A OUTPUT -j DROP":
                t["other"] += n
            seen = True
    return t if seen else None

URL = CFG["url"] + "flood-probe"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": os.environ.get("http_proxy", "")}))

def probe(phase):
    t0 = time.perf_counter()
    try:
        with opener.open(URL, timeout=CFG["probe_timeout_s"]) as r:
            body = r.read()
            status, err = r.status, None
    except Exception as e:
        status, err = getattr(e, "code", None), repr(e)
    out(k="probe", phase=phase, start=t0, ms=(time.perf_counter() - t0) * 1000, status=status, err=err)

def attempts(n):
    """Warm-up: n TCP and n UDP attempts, like the workers' but slower."""
    made = {"tcp": 0, "udp": 0}
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("198.51.100.250", 443))
        held.append(s)
        made["tcp"] += 1
        try:
            u.sendto(b"warm-up", ("198.51.100.250", 443))
        except OSError:
            pass
        made["udp"] += 1
        time.sleep(0.01)
    time.sleep(0.05)
    for s in held:
        s.close()
    u.close()
    return made

def queue_stats():
    """The kernel's NFQUEUE statistics in this namespace: packets dropped because the queue was full
    (queue_dropped) or could not be sent to proxywall (user_dropped)."""
    try:
        with open("/proc/net/netfilter/nfnetlink_queue") as f:
            rows = [l.split() for l in f if l.strip()]
        return [{"queue": int(r[0]), "waiting": int(r[2]), "queue_dropped": int(r[5]), "user_dropped": int(r[6]), "ids": int(r[7])} for r in rows]
    except (OSError, ValueError, IndexError):
        return None

base = counters()
out(k="phase", name="warmup", url=URL, counters=base, queue=queue_stats())
warm = attempts(CFG["warmup_attempts"])
probe("warmup")
time.sleep(0.2)
probe("warmup")
time.sleep(0.3)

out(k="phase", name="flood_start")
per = CFG["rate"] / CFG["workers"]
procs = [subprocess.Popen([sys.executable, CFG["worker"], json.dumps({"id": w, "rate": per, "secs": CFG["secs"], "nice": CFG["nice"]})],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) for w in range(CFG["workers"])]
t0 = time.monotonic()
next_probe = t0
# Each request in a thread of its own, started on time whether or not the one before has ended.
probes = []
while any(p.poll() is None for p in procs) and time.monotonic() - t0 < CFG["secs"] + 20:
    now = time.monotonic()
    if now >= next_probe:
        th = threading.Thread(target=probe, args=("flood",))
        th.start()
        probes.append(th)
        next_probe += 0.5
    time.sleep(max(0.0, min(0.05, next_probe - time.monotonic())))
for p in procs:
    try:
        o, _ = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        o, _ = p.communicate()
    for line in o.decode().splitlines():
        if line.startswith("{"):
            out(k="worker", **json.loads(line))
out(k="phase", name="flood_end", secs=time.monotonic() - t0)
for th in probes:
    th.join(CFG["probe_timeout_s"] + 5)
for _ in range(4):
    probe("settle")
    time.sleep(0.5)
after = counters()
out(k="phase", name="settled", counters=after, warm=warm, queue=queue_stats())
out(k="done")
`;

// ---- the benchmark's side -----------------------------------------------------------------------

interface Sample {
  at: number;
  rssKb: number;
  cpuTicks: number;
  phase?: string;
}

interface Probe {
  phase: "warmup" | "flood" | "settle";
  start: number;
  ms: number;
  status: number | null;
  err: string | null;
}

interface WorkerReport {
  id: number;
  secs: number;
  made: { tcp: number; udp: number };
  res: { tcp: Record<string, number>; udp: Record<string, number> };
}

type Totals = { tcp: number | null; udp: number | null; other: number | null; events: number; lost: number; final: boolean; ts: string };
type Counters = { tcp: number; udp: number; other: number } | null;

interface FloodRun {
  pw: Proxywall;
  result: LiveResult;
  samples: Sample[];
  phases: Map<string, { at: number; o: Record<string, unknown> }>;
  probes: Probe[];
  workers: WorkerReport[];
  done: boolean;
  detect: { tcp: number; udp: number; at: number[]; attribution: Map<string, number> };
  totals: (Totals & { at: number })[];
  summaries: number;
  proxyEvents: Event[];
  serverHits: number;
}

function readProc(pid: number): { rssKb: number; cpuTicks: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after "pid (comm) ".
    return m ? { rssKb: Number(m[1]), cpuTicks: Number(f[11]) + Number(f[12]) } : null;
  } catch {
    return null;
  }
}

async function floodRun(pw: Proxywall, python: string, driver: string, worker: string, own: OwnNetns, leftovers: Leftovers, ids: Set<string>): Promise<FloodRun> {
  const samples: Sample[] = [];
  const phases = new Map<string, { at: number; o: Record<string, unknown> }>();
  const probes: Probe[] = [];
  const workers: WorkerReport[] = [];
  const detect = { tcp: 0, udp: 0, at: [] as number[], attribution: new Map<string, number>() };
  const totals: (Totals & { at: number })[] = [];
  const proxyEvents: Event[] = [];
  let summaries = 0;
  let done = false;
  let pid: number | null = null;
  const sample = (phase?: string) => {
    if (pid === null) return;
    const p = readProc(pid);
    if (p) samples.push({ at: wallMs(), ...p, ...(phase ? { phase } : {}) });
  };
  const hits0 = own.hits();
  const sampler = setInterval(() => sample(), 250);
  const cfg = { url: own.url, rate: RATE, secs: SECS, workers: WORKERS, worker, warmup_attempts: WARMUP_ATTEMPTS, nice: NICE, probe_timeout_s: PROBE_TIMEOUT_S };
  try {
    const { result } = await runLive(
      runArgv(own.wrap(pw), [python, driver, JSON.stringify(cfg)], ["--summary-interval", String(SUMMARY_INTERVAL_S), "--log-rate", String(LOG_RATE), ...own.allowArgs(pw)]),
      {
        deadlineMs: (SECS + 90) * 1000,
        onStart: (run) => {
          pid = run.pid;
          samples.length = 0;
        },
        onEvent: (e, at) => {
          if (KEEP_EVENTS) appendFileSync(KEEP_EVENTS, JSON.stringify({ at, build: pw.name, ...e }) + "\n");
          switch (e.event) {
            case "sandbox_ready":
              leftovers.trackEvents([e]);
              ids.add(String(e.sandbox));
              sample("sandbox_ready");
              break;
            case "bypass_detect":
              if (e.proto === "tcp") detect.tcp++;
              else detect.udp++;
              detect.at.push(at);
              {
                const p = e.process as { resolved: boolean; why?: string } | null;
                const k = `${e.proto} ${e.source}: ${p?.resolved ? "resolved" : (p?.why ?? "no process")}`;
                detect.attribution.set(k, (detect.attribution.get(k) ?? 0) + 1);
              }
              break;
            case "bypass_totals":
              totals.push({ ...(e as unknown as Totals), at });
              break;
            case "bypass_summary":
              summaries++;
              break;
            case "proxy_connect":
              proxyEvents.push(e);
              break;
          }
        },
        onStdoutLine: (text, at) => {
          if (!text.startsWith("{")) return;
          const o = JSON.parse(text) as Record<string, unknown>;
          if (o.k === "phase") {
            sample(String(o.name));
            phases.set(String(o.name), { at, o });
          } else if (o.k === "probe") probes.push(o as unknown as Probe);
          else if (o.k === "worker") workers.push(o as unknown as WorkerReport);
          else if (o.k === "done") done = true;
        },
      },
    );
    return { pw, result, samples, phases, probes, workers, done, detect, totals, summaries, proxyEvents, serverHits: own.hits() - hits0 };
  } finally {
    clearInterval(sampler);
  }
}

const mb = (kb: number) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : "-");
const pct = (r: number) => (Number.isFinite(r) ? `${r >= 0 ? "+" : ""}${(r * 100).toFixed(1)}%` : "-");
const n = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : String(x));

function summarize(r: FloodRun) {
  const start = r.phases.get("flood_start");
  const end = r.phases.get("flood_end");
  const ready = r.samples.find((s) => s.phase === "sandbox_ready");
  const startS = r.samples.find((s) => s.phase === "flood_start");
  const endFloodS = r.samples.find((s) => s.phase === "flood_end");
  const fromStart = startS ? r.samples.filter((s) => s.at >= startS.at) : [];
  const last = r.samples[r.samples.length - 1];
  const peak = fromStart.reduce((m, s) => Math.max(m, s.rssKb), 0);
  const cpuFlood = startS && endFloodS ? ((endFloodS.cpuTicks - startS.cpuTicks) / 100) / ((endFloodS.at - startS.at) / 1000) : NaN;
  const tcpMade = r.workers.reduce((a, w) => a + w.made.tcp, 0);
  const udpMade = r.workers.reduce((a, w) => a + w.made.udp, 0);
  const tcpRefusedCalls = r.workers.reduce((a, w) => a + Object.entries(w.res.tcp).filter(([k]) => k === "EINPROGRESS" || k === "ECONNREFUSED").reduce((x, [, v]) => x + v, 0), 0);
  const udpRejectedCalls = r.workers.reduce((a, w) => a + (w.res.udp.EPERM ?? 0) + (w.res.udp.ECONNREFUSED ?? 0), 0);
  const floodSecs = Math.max(...r.workers.map((w) => w.secs), 0);
  const settled = r.phases.get("settled")?.o as { counters?: Counters; warm?: { tcp: number; udp: number } } | undefined;
  const base = r.phases.get("warmup")?.o.counters as Counters | undefined;
  const own = settled?.counters && base ? { tcp: settled.counters.tcp - base.tcp, udp: settled.counters.udp - base.udp, other: settled.counters.other - base.other } : null;
  const warm = settled?.warm ?? { tcp: WARMUP_ATTEMPTS, udp: WARMUP_ATTEMPTS };
  const final = r.totals.find((t) => t.final);
  type Q = { queue: number; waiting: number; queue_dropped: number; user_dropped: number }[] | null | undefined;
  const q0 = r.phases.get("warmup")?.o.queue as Q;
  const q1 = r.phases.get("settled")?.o.queue as Q;
  const qsum = (q: Q) => (q ? q.reduce((a, x) => a + x.queue_dropped + x.user_dropped, 0) : null);
  const queueDropped = q0 !== undefined && q1 ? (qsum(q1) ?? 0) - (qsum(q0) ?? 0) : null;
  const stillHeld = q1 ? q1.reduce((a, x) => a + x.waiting, 0) : null;
  const readyEv = r.result.events.find((e) => e.event === "sandbox_ready");
  const closedEv = r.result.events.find((e) => e.event === "sandbox_closed");
  const runSecs = readyEv && closedEv ? (Date.parse(String(closedEv.ts)) - Date.parse(String(readyEv.ts))) / 1000 : NaN;
  const periodic = r.totals.filter((t) => !t.final);
  const during = start && end ? periodic.filter((t) => t.at >= start.at && t.at <= end.at + 500) : [];
  const gaps = periodic.slice(1).map((t, i) => (t.at - periodic[i]!.at) / 1000);
  // proxy_connect is written when a request ends: it started duration_ms before its ts.
  // proxy_connect is written when a request ends; the proxy took it in duration_ms before its ts.
  const floodProxy = start
    ? r.proxyEvents
        .map((e) => ({ acceptedS: (Date.parse(String(e.ts)) - Number(e.duration_ms) - start.at) / 1000 }))
        .filter((x) => x.acceptedS >= -0.1 && (!end || x.acceptedS <= (end.at - start.at) / 1000 + 1))
    : [];
  const mid = startS && endFloodS ? fromStart.find((q) => q.at >= (startS.at + endFloodS.at) / 2) : undefined;
  const rssPerSecond: string[] = [];
  if (startS) {
    for (let t = startS.at; t <= (last?.at ?? 0); t += 1000) {
      const x = fromStart.find((q) => q.at >= t);
      if (x) rssPerSecond.push((x.rssKb / 1024).toFixed(0));
    }
  }
  const perSecond: string[] = [];
  if (start && end) {
    for (let t = start.at; t < end.at; t += 1000) perSecond.push(String(r.detect.at.filter((a) => a >= t && a < Math.min(t + 1000, end.at)).length));
  }
  const linesInFlood = start && end ? r.detect.at.filter((a) => a >= start.at && a <= end.at).length : 0;
  return {
    start, end, ready, startS, endFloodS, last, peak, cpuFlood, tcpMade, udpMade, tcpRefusedCalls, udpRejectedCalls, floodSecs, own, warm, final, runSecs,
    periodic, during, gaps, linesInFlood, floodProxy, perSecond, rssPerSecond, queueDropped, stillHeld, mid,
  };
}

async function main(): Promise<number> {
  requireRootLinux("flood");
  const python = systemTool("python3");
  if (!python) {
    console.error("flood: needs python3");
    return 2;
  }
  const builds: Proxywall[] = [FROM_SOURCE];
  const compiled = SOURCE_ONLY ? null : compiledProxywall(COMPILED);
  if (compiled?.pw) builds.push(compiled.pw);

  const leftovers = new Leftovers();
  const ids = new Set<string>();
  const dir = mkdtempSync(join(tmpdir(), "proxywall-flood-"));
  const runs: FloodRun[] = [];
  const problems: string[] = [];
  let own: OwnNetns | null = null;
  try {
    own = await startOwnNetns(python, leftovers);
    chmodSync(dir, 0o755);
    const driver = join(dir, "driver.py");
    const worker = join(dir, "worker.py");
    writeFileSync(driver, DRIVER_PY);
    writeFileSync(worker, WORKER_PY);
    for (const pw of builds) {
      if (interrupted()) break;
      console.error(`flood: ${pw.name}: ${WORKERS} workers, ${RATE} attempts/s for ${SECS} s; about ${SECS + 8} s`);
      const r = await floodRun(pw, python, driver, worker, own, leftovers, ids);
      const p = checkLive(`run ${pw.name}`, r.result, r.done, "driver");
      if (r.workers.length !== WORKERS) p.push(`run ${pw.name}: ${r.workers.length} of ${WORKERS} workers reported`);
      problems.push(...p);
      if (p.length === 0) runs.push(r);
    }
  } finally {
    if (own) problems.push(...(await own.close()));
    rmSync(dir, { recursive: true, force: true });
    compiled?.cleanup();
    problems.push(...leftBehind(leftovers, ids));
  }

  console.log(`kernel ${release()}, ${cpus().length} CPUs; state dir ${STATE_DIR}; proxywall in ${own?.name} (nsenter --net), requests to ${own?.url}; run --summary-interval ${SUMMARY_INTERVAL_S} --log-rate ${LOG_RATE}`);
  console.log(
    `flood: ${WORKERS} python3 workers (nice ${NICE}), ${RATE} attempts/s asked (${RATE / WORKERS}/s each, half TCP connect, half UDP sendto), ${SECS} s, to 198.51.100.0/24 and 203.0.113.0/24 :443`,
  );
  if (compiled?.note) console.log(compiled.note);
  if (runs.length === 0) {
    console.error(`flood: no run finished: ${problems.join("; ")}`);
    return 1;
  }
  const S = runs.map(summarize);
  type Sum = ReturnType<typeof summarize>;
  const rows: string[][] = [["", ...runs.map((r) => r.pw.name)]];
  const add = (label: string, f: (r: FloodRun, s: Sum) => string) => rows.push([label, ...runs.map((r, i) => f(r, S[i]!))]);
  const section = (label: string) => rows.push([label, ...runs.map(() => "")]);

  section("-- rate");
  add("attempts made (TCP + UDP)", (_, s) => `${s.tcpMade + s.udpMade} (${s.tcpMade} + ${s.udpMade})`);
  add("flood time s (slowest worker)", (_, s) => s.floodSecs.toFixed(2));
  add("achieved attempts/s", (_, s) => ((s.tcpMade + s.udpMade) / s.floodSecs).toFixed(0));
  add("per worker attempts/s", (r) => r.workers.map((w) => ((w.made.tcp + w.made.udp) / w.secs).toFixed(0)).join(" "));
  add("TCP connect_ex results", (r) => tallyResults(r.workers.map((w) => w.res.tcp)));
  add("UDP sendto results", (r) => tallyResults(r.workers.map((w) => w.res.udp)));

  section("-- proxywall RSS (VmRSS)");
  add("at sandbox_ready", (_, s) => mb(s.ready?.rssKb ?? NaN));
  add("start: flood start, after 1 s warm-up", (_, s) => mb(s.startS?.rssKb ?? NaN));
  add("mid-flood", (_, s) => mb(s.mid?.rssKb ?? NaN));
  add("at flood end", (_, s) => mb(s.endFloodS?.rssKb ?? NaN));
  add("peak (flood start to end)", (_, s) => `${mb(s.peak)} (${pct(s.startS ? s.peak / s.startS.rssKb - 1 : NaN)})`);
  add("end: 2 s after the flood", (_, s) => mb(s.last?.rssKb ?? NaN));
  add("growth end vs start", (_, s) => pct(s.startS && s.last ? s.last.rssKb / s.startS.rssKb - 1 : NaN));
  add("growth end vs mid-flood", (_, s) => pct(s.mid && s.last ? s.last.rssKb / s.mid.rssKb - 1 : NaN));
  add("samples (every 250 ms)", (r) => String(r.samples.length));
  add("CPU during the flood (1.0 = a core)", (_, s) => (Number.isFinite(s.cpuFlood) ? s.cpuFlood.toFixed(2) : "-"));

  section("-- requests through the proxy");
  for (const phase of ["warmup", "flood", "settle"] as const) {
    add(`${phase}: ok / made`, (r) => {
      const ps = r.probes.filter((p) => p.phase === phase);
      return `${ps.filter((p) => p.status === 200).length} / ${ps.length}`;
    });
    add(`${phase}: median / p90 / max ms`, (r) => {
      const ms = r.probes.filter((p) => p.phase === phase).map((p) => p.ms);
      return ms.length ? `${fmtMs(quantile(ms, 0.5))} / ${fmtMs(quantile(ms, 0.9))} / ${fmtMs(Math.max(...ms))}` : "-";
    });
  }
  add("proxy_connect lines ok / all", (r) => `${r.proxyEvents.filter((e) => e.outcome === "ok").length} / ${r.proxyEvents.length}`);
  add("requests the server answered", (r) => String(r.serverHits));

  section("-- totals (whole run: warm-up + flood)");
  add("TCP: made / SYN sent (EINPROGRESS)", (_, s) => `${s.tcpMade + s.warm.tcp} / ${s.tcpRefusedCalls + s.warm.tcp}`);
  add("TCP: final bypass_totals", (_, s) => n(s.final?.tcp));
  add("TCP: counters read by the driver", (_, s) => n(s.own?.tcp));
  add("UDP: made / refused in sendto (EPERM)", (_, s) => `${s.udpMade + s.warm.udp} / ${s.udpRejectedCalls + s.warm.udp}`);
  add("UDP: final bypass_totals", (_, s) => n(s.final?.udp));
  add("UDP: counters read by the driver", (_, s) => n(s.own?.udp));
  add("other: final / driver", (_, s) => `${n(s.final?.other)} / ${n(s.own?.other)}`);
  add("SYNs dropped from a full NFQUEUE", (_, s) => (s.queueDropped === null ? "-" : String(s.queueDropped)));
  add("SYNs still held when CMD ended", (_, s) => (s.stillHeld === null ? "-" : String(s.stillHeld)));
  add("bypass_detect lines TCP / UDP", (r) => `${r.detect.tcp} / ${r.detect.udp}`);
  add("  most the limits allow TCP / UDP", (_, s) => {
    const one = Math.floor(LOG_RATE * s.runSecs + 2 * LOG_RATE);
    return `${2 * one} / ${one} (${s.runSecs.toFixed(1)} s)`;
  });
  add("  read during the flood (per s)", (_, s) => `${s.linesInFlood} (${(s.linesInFlood / s.floodSecs).toFixed(0)}/s)`);
  add("final totals: events / lost", (_, s) => `${n(s.final?.events)} / ${n(s.final?.lost)}`);

  section("-- periodic summaries (every 2 s)");
  add("bypass_totals lines (not final)", (_, s) => `${s.periodic.length} (${s.during.length} during the flood)`);
  add("bypass_summary lines", (r) => String(r.summaries));
  console.log("");
  console.log(table(rows));

  for (const [i, r] of runs.entries()) {
    const s = S[i]!;
    const reqs = r.probes
      .filter((p) => p.phase === "flood")
      .sort((a, b) => a.start - b.start)
      .map((p) => (p.status === 200 ? fmtMs(p.ms) : `FAILED(${fmtMs(p.ms)})`));
    console.log("");
    console.log(`${r.pw.name}, over time:`);
    console.log(`  RSS each second from flood start, MB: ${s.rssPerSecond.join(" ")}`);
    console.log(`  requests started every 500 ms during the flood, ms each, in order: ${reqs.join(" ")}`);
    console.log(`  the proxy took them in at (s after flood start): ${s.floodProxy.map((x) => x.acceptedS.toFixed(1)).join(" ") || "-"}`);
    console.log(`  bypass_detect lines read in each second of the flood: ${s.perSecond.join(" ") || "-"}`);
    console.log(`  periodic bypass_totals lines, s between them: ${s.gaps.map((g) => g.toFixed(2)).join(" ") || "-"}; TCP/UDP in those during the flood: ${s.during.map((t) => `${t.tcp}/${t.udp}`).join(" ") || "-"}`);
    const bad = r.probes.filter((p) => p.status !== 200);
    if (bad.length > 0) console.log(`  FAILED requests: ${bad.map((p) => `${p.phase} ${fmtMs(p.ms)} ms ${p.status ?? ""} ${p.err ?? ""}`).join("; ")}`);
    console.log(`  bypass_detect lines by protocol, source and process:`);
    for (const [k, v] of [...r.detect.attribution].sort((a, b) => b[1] - a[1])) console.log(`    ${String(v).padStart(6)}  ${k}`);
  }
  console.log("");
  for (const [i, r] of runs.entries()) {
    const s = S[i]!;
    const growth = s.startS && s.last ? s.last.rssKb / s.startS.rssKb - 1 : NaN;
    const okProbes = r.probes.length > 0 && r.probes.every((p) => p.status === 200);
    const exact = s.final && s.own && s.final.tcp === s.own.tcp && s.final.udp === s.own.udp;
    const dTcp = s.final?.tcp == null ? NaN : s.final.tcp - (s.tcpRefusedCalls + s.warm.tcp);
    const dUdp = s.final?.udp == null ? NaN : s.final.udp - (s.udpRejectedCalls + s.warm.udp);
    const floodMs = r.probes.filter((p) => p.phase === "flood").map((p) => p.ms);
    console.log(
      `${r.pw.name}: RSS growth ${pct(growth)} (target < ${TARGET_GROWTH * 100}%: ${growth < TARGET_GROWTH ? "met" : "NOT met"}); ` +
        `requests through the proxy: ${okProbes ? "all succeeded" : "NOT all succeeded"}, slowest during the flood ${fmtMs(Math.max(...floodMs))} ms; ` +
        `final totals ${exact ? "equal" : "DO NOT equal"} the counters the driver read, and ${dTcp === 0 && dUdp === 0 ? "equal" : `DO NOT equal (TCP ${dTcp >= 0 ? "+" : ""}${dTcp}, UDP ${dUdp >= 0 ? "+" : ""}${dUdp}${s.queueDropped ? `; the kernel dropped ${s.queueDropped} SYNs from the full NFQUEUE` : ""}${s.stillHeld ? `; ${s.stillHeld} SYNs were still held without a verdict when CMD ended` : ""})`} what the workers sent; ` +
        `achieved ${((s.tcpMade + s.udpMade) / s.floodSecs).toFixed(0)} of ${RATE} attempts/s asked`,
    );
  }
  console.log(namespacesNote(ids));

  if (interrupted()) problems.push(`interrupted by ${interrupted()}`);
  if (problems.length > 0) {
    console.error(`flood: ${problems.join("; ")}`);
    return 1;
  }
  return 0;
}

function tallyResults(rs: Record<string, number>[]): string {
  const t = new Map<string, number>();
  for (const r of rs) for (const [k, v] of Object.entries(r)) t.set(k, (t.get(k) ?? 0) + v);
  return [...t].map(([k, v]) => `${k === "0" ? "ok" : k}:${v}`).join(",") || "-";
}

process.exit(await main());
