// How fast a refused connection fails inside a proxywall sandbox: median and p99 time to the
// error for blocking and non-blocking clients, IPv4 and IPv6, under the fence the real `proxywall
// run` installs (TCP rejected with a reset), side by side in the same run with the same clients
// under an ICMP-reject variant of that fence (TCP rejected with port-unreachable, the usual choice).
//
//   node_modules/.bin/bun bench/fastfail.ts [--n 50]
//
// Needs root. `proxywall run -- python3 WORKER` (state dir /run/proxywall-bench), so whatever a
// real run installs, hold chain and NFQUEUE listener included, is what gets measured ("default");
// then the same again with `--monitor off` (the fence alone: nothing listens on the hold queue, so
// "queue ... bypass" passes each SYN straight on to the reject), to separate the fence from the
// hold's cost.
// Inside each sandbox the worker (root in the namespace):
//   1. times N attempts per client and family under the untouched fence;
//   2. rewrites the fence's TCP rejects to ICMP port-unreachable with the tool the run used
//      (iptables[-legacy]-save | iptables[-legacy]-restore, or nft list table | nft -f), and times
//      the same clients again: at least 5 and at most N attempts, stopping after 5 once a client has used 2.5 s
//      (blocking and IPv6 clients take about a second each there).
// Clients: python blocking (socket.create_connection, no timeout), python non-blocking
// (connect_ex + poll + SO_ERROR), node net.connect, bash /dev/tcp, and a name lookup (python
// socket.getaddrinfo of a fresh name, A for IPv4 and AAAA for IPv6: glibc's resolver, answered
// REFUSED by proxywall's DNS responder in the sandbox); python and node time each
// attempt in-process (perf_counter / hrtime), bash with $EPOCHREALTIME around the redirection,
// so no process start is in any figure. Each client alternates two destinations: IPv4
// 198.51.100.7:443 and 203.0.113.9:9, IPv6 [2001:db8::7]:443 and [2001:db8::9]:9 (the sandbox has
// no host side to aim at: its only way out is the proxy's door on its own loopback, which the
// fence lets through). All are refused inside the namespace; nothing leaves it. Attempts are paced 20 ms apart (not timed), so none exceeds the
// 100/s limit of the hold and log rules and every attempt takes the same path through the fence.
// Every attempt has a 5 s deadline (SIGALRM for the blocking one), every series a bound.
//
// Prints a table and whether the issue's target (median at most 5 ms for every client under
// proxywall's fence) is met; never fails on a figure. Exit 0 unless the benchmark itself broke.
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir, release } from "node:os";
import { join } from "node:path";
import { cleanupOwn, Leftovers } from "./cleanup.ts";
import { flag, fmtMs, fmtRatio, FROM_SOURCE, quantile, readyOf, requireRootLinux, runArgv, runWithDeadline, STATE_DIR, systemTool, table, tally, type Event, type RunResult } from "./support.ts";

const TARGET_MEDIAN_MS = 5;
const RUN_DEADLINE_MS = 10 * 60_000;
/** Where each client's attempts go, in turn: addresses the sandbox rejects (documentation ranges). */
const TARGETS = { 4: [["198.51.100.7", 443], ["203.0.113.9", 9]], 6: [["2001:db8::7", 443], ["2001:db8::9", 9]] };

const N = flag("--n", 50, 5, 500);

// ---- the worker, run as CMD inside the sandbox ---------------------------------------------------

const WORKER_PY = String.raw`
import json, os, random, select, shutil, signal, socket, subprocess, sys, tempfile, time, errno as E

CFG = json.loads(sys.argv[1])
TMO = CFG["timeout_s"]; PACE = CFG["pace_s"]

def tool(name):
    for p in [shutil.which(name), "/usr/sbin/" + name, "/sbin/" + name, "/usr/bin/" + name, "/bin/" + name]:
        if p and os.access(p, os.X_OK):
            return p
    return None

TARGETS = {int(k): [tuple(t) for t in v] for k, v in CFG["targets"].items()}
AF = {4: socket.AF_INET, 6: socket.AF_INET6}

def ename(n):
    return E.errorcode.get(n, str(n)) if n else "connected"

class Alarm(BaseException):
    pass

def on_alarm(*_):
    raise Alarm()

signal.signal(signal.SIGALRM, on_alarm)

def py_blocking(fam, addr):
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, TMO)
    try:
        s = socket.create_connection(addr)  # no timeout: a blocking connect()
        t1 = time.perf_counter()
        s.close()
        res = "connected"
    except Alarm:
        t1 = time.perf_counter(); res = "timeout"
    except OSError as e:
        t1 = time.perf_counter(); res = ename(e.errno)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return (t1 - t0) * 1000, res

def py_nonblocking(fam, addr):
    t0 = time.perf_counter()
    s = socket.socket(AF[fam], socket.SOCK_STREAM)
    s.setblocking(False)
    rc = s.connect_ex(addr)
    if rc == E.EINPROGRESS:
        p = select.poll()
        p.register(s, select.POLLOUT | select.POLLERR | select.POLLHUP)
        ready = p.poll(int(TMO * 1000))
        t1 = time.perf_counter()
        res = ename(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)) if ready else "timeout"
    else:
        t1 = time.perf_counter()
        res = ename(rc)
    s.close()
    return (t1 - t0) * 1000, res

def py_getaddrinfo(fam, addr):
    # A name of its own per attempt (nothing cached): glibc asks the resolv.conf server, which
    # proxywall's DNS responder answers REFUSED for the sandbox; the error is what is timed.
    name = "fastfail-%d.proxywall.test" % random.randrange(10**9)
    t0 = time.perf_counter()
    try:
        socket.getaddrinfo(name, 80, AF[fam], socket.SOCK_STREAM)
        res = "resolved"
    except socket.gaierror as e:
        res = {socket.EAI_AGAIN: "EAI_AGAIN", socket.EAI_NONAME: "EAI_NONAME", socket.EAI_FAIL: "EAI_FAIL"}.get(e.errno, "EAI_%d" % e.errno)
    except OSError as e:
        res = ename(e.errno)
    return (time.perf_counter() - t0) * 1000, res

def series_in_process(fn, fam, n, min_n, budget, hard):
    out = []
    start = time.monotonic()
    for i in range(n):
        el = time.monotonic() - start
        if (i >= min_n and el >= budget) or (i >= 1 and el >= hard):
            break
        out.append(fn(fam, TARGETS[fam][i % len(TARGETS[fam])]))
        time.sleep(PACE)
    return out

def series_node(fam, n, min_n, budget, hard):
    arg = json.dumps({"targets": TARGETS[fam], "n": n, "min_n": min_n, "budget_s": budget, "hard_s": hard, "pace_s": PACE, "timeout_s": TMO})
    try:
        p = subprocess.run([CFG["node"], CFG["node_script"], arg], capture_output=True, text=True, timeout=hard + 2 * TMO + 30)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    return [(r["ms"], r["res"]) for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))]

def series_bash(fam, n, min_n, budget, hard):
    args = [CFG["bash"], CFG["bash_script"], str(n), str(min_n), str(int(-(-budget // 1))), str(int(hard)), str(PACE)]
    for h, port in TARGETS[fam]:
        args += [h, str(port)]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=hard + 60, env={**os.environ, "LC_ALL": "C"})
        out, err = p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        dec = lambda b: b.decode() if isinstance(b, bytes) else (b or "")
        out, err = dec(e.stdout), dec(e.stderr)
    # bash says why on stderr: "bash: connect: Connection refused", one per failed attempt
    why = [l.split("connect: ", 1)[1].strip() for l in err.splitlines() if "connect: " in l]
    names = {"Connection refused": "ECONNREFUSED", "Connection timed out": "ETIMEDOUT", "No route to host": "EHOSTUNREACH",
             "Network is unreachable": "ENETUNREACH", "Operation not permitted": "EPERM"}
    res, k = [], 0
    for l in out.splitlines():
        x = l.split()
        if len(x) != 3:
            continue
        t0, t1, rc = float(x[0].replace(",", ".")), float(x[1].replace(",", ".")), int(x[2])
        if rc == 0:
            r = "connected"
        else:
            r = names.get(why[k], why[k]) if k < len(why) else "error"
            k += 1
        res.append(((t1 - t0) * 1000, r))
    return res

CLIENTS = [
    ("python blocking", lambda fam, *a: series_in_process(py_blocking, fam, *a)),
    ("python non-blocking", lambda fam, *a: series_in_process(py_nonblocking, fam, *a)),
    ("node net.connect", series_node),
    ("bash /dev/tcp", series_bash),
    ("python getaddrinfo (DNS)", lambda fam, *a: series_in_process(py_getaddrinfo, fam, *a)),
]

def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)

NFT = tool("nft")

def xtables(flavour):
    """iptables, ip6tables and their -save/-restore: the legacy build's or the system's."""
    names = ("iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore")
    found = [tool(n.replace("tables", "tables" + flavour, 1)) for n in names]
    return found if all(found) else None

def backend():
    """Which tool holds the fence: nft, or either build of x_tables (proxywall prefers the legacy
    one where the kernel has it), told by whose save shows the tcp-reset reject."""
    if NFT and run([NFT, "list", "table", "inet", "proxywall"]).returncode == 0:
        return "nft", None
    for flavour in ("-legacy", ""):
        x = xtables(flavour)
        if x and "tcp-reset" in run([x[2]]).stdout:
            return "iptables" + flavour, x
    return None, None

BACKEND, XT = backend()
if XT:
    IPT, IP6T, IPT_SAVE, IPT_RESTORE, IP6T_SAVE, IP6T_RESTORE = XT

def tcp_rejects():
    """Packets the fence's TCP reject rules have matched so far (both families)."""
    total = 0
    if BACKEND == "nft":
        for l in run([NFT, "list", "table", "inet", "proxywall"]).stdout.splitlines():
            if "l4proto tcp" in l and "reject" in l and "counter packets" in l:
                total += int(l.split("counter packets", 1)[1].split()[0])
        return total
    if XT:
        for t in (IPT, IP6T):
            for l in run([t, "-w", "5", "-t", "filter", "-L", "OUTPUT", "-n", "-v", "-x"]).stdout.splitlines()[2:]:
                x = l.split()
                if len(x) > 3 and x[2] == "REJECT" and x[3] in ("tcp", "6"):
                    total += int(x[0])
        return total
    return None

def to_icmp():
    """Rewrites every TCP reject of the installed fence to ICMP port-unreachable; returns what ran."""
    if XT:
        done = []
        for save, restore, icmp in ((IPT_SAVE, IPT_RESTORE, "icmp-port-unreachable"), (IP6T_SAVE, IP6T_RESTORE, "icmp6-port-unreachable")):
            text = run([save]).stdout
            k = text.count("--reject-with tcp-reset")
            if k == 0:
                sys.exit(f"worker: {save} shows no tcp-reset reject to rewrite")
            r = run([restore, "-w", "5"], text.replace("--reject-with tcp-reset", "--reject-with " + icmp))
            if r.returncode != 0:
                sys.exit(f"worker: {restore} failed: {r.stderr.strip()}")
            if "tcp-reset" in run([save]).stdout:
                sys.exit(f"worker: {save} still shows a tcp-reset reject")
            done.append(f"{os.path.basename(restore)}: {k} tcp-reset -> {icmp}")
        return "; ".join(done)
    if BACKEND == "nft":
        text = run([NFT, "list", "table", "inet", "proxywall"]).stdout
        k = text.count("reject with tcp reset")
        if k == 0:
            sys.exit("worker: nft shows no tcp reset reject to rewrite")
        fd, path = tempfile.mkstemp(prefix="fastfail-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as f:
                f.write("delete table inet proxywall\n" + text.replace("reject with tcp reset", "reject with icmpx type port-unreachable"))
            r = run([NFT, "-f", path])
        finally:
            os.unlink(path)
        if r.returncode != 0:
            sys.exit(f"worker: nft -f failed: {r.stderr.strip()}")
        if "tcp reset" in run([NFT, "list", "table", "inet", "proxywall"]).stdout:
            sys.exit("worker: nft still shows a tcp reset reject")
        return f"nft -f: {k} tcp reset -> icmpx port-unreachable"
    sys.exit("worker: cannot tell which firewall backend the fence uses")

def measure(rule, n, min_n, budget, hard):
    for fam in (4, 6):
        for name, fn in CLIENTS:
            c0 = tcp_rejects()
            samples = fn(fam, n, min_n, budget, hard)
            c1 = tcp_rejects()
            print(json.dumps({"kind": "series", "client": name, "family": f"ipv{fam}", "rule": rule,
                              "ms": [s[0] for s in samples], "res": [s[1] for s in samples],
                              "rejects": None if c0 is None or c1 is None else c1 - c0}), flush=True)

print(json.dumps({"kind": "info", "backend": BACKEND,
                  "targets": {f"ipv{k}": [f"{h}:{p}" if k == 4 else f"[{h}]:{p}" for h, p in v] for k, v in TARGETS.items()}}), flush=True)
N = CFG["n"]
measure("tcp-reset", N, N, 1e9, 120)
how = to_icmp()
print(json.dumps({"kind": "icmp", "how": how}), flush=True)
measure("icmp", N, 5, 2.5, 30)
print(json.dumps({"kind": "done"}), flush=True)
`;

const NODE_JS = String.raw`
const net = require("net");
const cfg = JSON.parse(process.argv[2]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function once(host, port) {
  return new Promise((resolve) => {
    let done = false;
    const t0 = process.hrtime.bigint();
    const s = net.connect({ host, port });
    const finish = (res) => {
      if (done) return;
      done = true;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      s.destroy();
      resolve({ ms, res });
    };
    const timer = setTimeout(() => finish("timeout"), cfg.timeout_s * 1000);
    s.once("connect", () => finish("connected"));
    s.once("error", (e) => finish(e.code || String(e)));
  });
}
(async () => {
  const start = Date.now();
  for (let i = 0; i < cfg.n; i++) {
    const el = (Date.now() - start) / 1000;
    if ((i >= cfg.min_n && el >= cfg.budget_s) || (i >= 1 && el >= cfg.hard_s)) break;
    const [host, port] = cfg.targets[i % cfg.targets.length];
    console.log(JSON.stringify(await once(host, port)));
    await sleep(cfg.pace_s * 1000);
  }
})();
`;

// $1 n, $2 min_n, $3 budget (whole seconds), $4 hard bound (s), $5 pace (s), then HOST PORT pairs.
// Prints "T0 T1 RC" per attempt; the redirection on ':' is bash's own blocking connect(), in-process.
const BASH_SH = String.raw`
n=$1 min=$2 budget=$3 hard=$4 pace=$5
shift 5
targets=("$@")
k=$(( ${"${#targets[@]}"} / 2 ))
SECONDS=0
for (( i = 0; i < n; i++ )); do
  if (( (i >= min && SECONDS >= budget) || (i >= 1 && SECONDS >= hard) )); then break; fi
  j=$(( i % k ))
  h=${"${targets[2*j]}"} p=${"${targets[2*j+1]}"}
  t0=$EPOCHREALTIME
  : 3<>"/dev/tcp/$h/$p"
  rc=$?
  t1=$EPOCHREALTIME
  echo "$t0 $t1 $rc"
  sleep "$pace"
done
`;

// ---- the benchmark's side -------------------------------------------------------------------------

interface Series {
  kind: "series";
  client: string;
  family: string;
  rule: "tcp-reset" | "icmp";
  ms: number[];
  res: string[];
  rejects: number | null;
}

interface RunData {
  label: string;
  result: RunResult;
  ready: Event | undefined;
  closed: Event | undefined;
  info: Record<string, unknown> | undefined;
  icmp: Record<string, unknown> | undefined;
  series: Series[];
  complete: boolean;
}

/** One `proxywall run -- python3 worker.py CFG`; the worker prints one JSON line per series. */
async function oneRun(label: string, extra: readonly string[], python: string, worker: string, cfg: object, leftovers: Leftovers): Promise<RunData> {
  // --keep-caps: the worker rewrites the fence's rejects for the ICMP variant, which a CMD without
  // CAP_NET_ADMIN (the default since CMD's init drops it) cannot do.
  const result = await runWithDeadline(runArgv(FROM_SOURCE, [python, worker, JSON.stringify(cfg)], ["--keep-caps", ...extra]), RUN_DEADLINE_MS);
  leftovers.trackEvents(result.events);
  const lines = result.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    label,
    result,
    ready: readyOf(result.events),
    closed: result.events.find((e) => e.event === "sandbox_closed"),
    info: lines.find((l) => l.kind === "info"),
    icmp: lines.find((l) => l.kind === "icmp"),
    series: lines.filter((l) => l.kind === "series") as unknown as Series[],
    complete: lines.some((l) => l.kind === "done"),
  };
}

/** The table of every series, side by side per client and family, and the verdict on the target. */
function printResults(data: RunData[]): void {
  console.log(`kernel ${release()}; proxywall run from source (bun src/main.ts), state dir ${STATE_DIR}`);
  for (const d of data) {
    const r = d.ready;
    console.log(
      `run "${d.label}": sandbox ${r?.sandbox ?? "?"}, backend ${r?.backend ?? "?"}, log ${r?.log ?? "?"}, monitor ${r?.monitor ?? "?"}, detection ${r?.detection ?? "?"}, setup_ms ${r?.setup_ms ?? "?"}` +
        (d.info ? `; fence seen inside: ${d.info.backend}` : ""),
    );
    if (d.icmp) console.log(`  ICMP variant: ${d.icmp.how}`);
  }
  const info = data.find((d) => d.info)?.info;
  if (info) console.log(`destinations (each client alternates the two): ${JSON.stringify(info.targets)}`);
  console.log("");

  const rows: string[][] = [["client", "family", "run", "rule", "n", "median ms", "p99 ms", "rejects/try", "result", "icmp/reset (median)"]];
  const key = (s: Series) => `${s.client}|${s.family}`;
  const order = [...new Set(data.flatMap((d) => d.series.map(key)))];
  for (const k of order) {
    for (const d of data) {
      const resetMedian = quantile(d.series.find((s) => key(s) === k && s.rule === "tcp-reset")?.ms ?? [], 0.5);
      for (const s of d.series.filter((x) => key(x) === k)) {
        const med = quantile(s.ms, 0.5);
        rows.push([
          s.client,
          s.family,
          d.label,
          s.rule,
          String(s.ms.length),
          fmtMs(med),
          fmtMs(quantile(s.ms, 0.99)),
          s.rejects === null || s.ms.length === 0 ? "-" : (s.rejects / s.ms.length).toFixed(2),
          tally(s.res, ","),
          s.rule === "icmp" ? fmtRatio(med / resetMedian) : "",
        ]);
      }
    }
  }
  console.log(table(rows));
  console.log("");
  console.log("p99 is nearest-rank: with 50 attempts it is the slowest one, with 5 the slowest of 5.");
  console.log("rejects/try: packets the fence's TCP reject rules matched per attempt (2 = the SYN was retransmitted once).");

  const first = data[0];
  const reset = first?.series.filter((s) => s.rule === "tcp-reset") ?? [];
  const slow = reset.filter((s) => !(quantile(s.ms, 0.5) <= TARGET_MEDIAN_MS));
  if (reset.length > 0) {
    const what = `target (median <= ${TARGET_MEDIAN_MS} ms for every client under proxywall's fence, run "${first!.label}")`;
    console.log(slow.length === 0 ? `${what}: met by all ${reset.length} client/family pairs` : `${what}: NOT met by ${slow.map((s) => `${s.client} ${s.family} (${fmtMs(quantile(s.ms, 0.5))} ms)`).join(", ")}`);
  }
  const notRefused = data.flatMap((d) => d.series.filter((s) => s.res.some((r) => r !== "ECONNREFUSED")).map((s) => `${s.client} ${s.family} ${d.label} ${s.rule} (${tally(s.res, ",")})`));
  if (notRefused.length > 0) console.log(`note: not every attempt ended in ECONNREFUSED: ${notRefused.join("; ")}`);
}

async function main(): Promise<number> {
  requireRootLinux("fastfail");
  // The system python, not a pyenv shim: its start-up is outside the figures either way.
  const python = systemTool("python3");
  const node = systemTool("node");
  const bash = systemTool("bash");
  if (!python || !node || !bash) {
    console.error(`fastfail: needs python3, node and bash (found: python3=${python}, node=${node}, bash=${bash})`);
    return 2;
  }
  // The real run as a user gets it; then the fence alone (nothing listens on the hold queue, so
  // "queue ... bypass" sends each SYN straight on to the reject).
  const runs = [
    { label: "default", extra: [] },
    { label: "monitor off", extra: ["--monitor", "off"] },
  ];

  const leftovers = new Leftovers();
  const dir = mkdtempSync(join(tmpdir(), "proxywall-fastfail-"));
  const data: RunData[] = [];
  try {
    chmodSync(dir, 0o755);
    const files = { worker: join(dir, "worker.py"), node_script: join(dir, "client.js"), bash_script: join(dir, "client.sh") };
    writeFileSync(files.worker, WORKER_PY);
    writeFileSync(files.node_script, NODE_JS);
    writeFileSync(files.bash_script, BASH_SH);
    const cfg = { n: N, timeout_s: 5, pace_s: 0.02, targets: TARGETS, node, bash, node_script: files.node_script, bash_script: files.bash_script };
    console.error(`fastfail: ${runs.length} proxywall run(s) (${runs.map((r) => r.label).join(", ")}), ${N} attempts per client and family under each fence (ICMP: at least 5); about a minute each`);
    for (const r of runs) {
      const d = await oneRun(r.label, r.extra, python, files.worker, cfg, leftovers);
      data.push(d);
      if (!d.complete) break;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    // Other benchmarks may have live sandboxes in the same state directory: report only ours.
    const left = cleanupOwn(leftovers);
    if (left.length > 0) console.error(`fastfail: LEFT BEHIND: ${left.join(", ")}`);
  }

  printResults(data);

  const problems: string[] = [];
  for (const d of data) {
    if (d.result.timedOut) problems.push(`run "${d.label}" hit its ${RUN_DEADLINE_MS / 1000} s deadline and was stopped`);
    if (!d.complete) problems.push(`run "${d.label}": the worker did not finish (proxywall exit ${d.result.code}${d.result.signal ? `, ${d.result.signal}` : ""})`);
    if (d.closed && Array.isArray(d.closed.cleanup) && d.closed.cleanup.length > 0) problems.push(`run "${d.label}": proxywall reported cleanup problems: ${JSON.stringify(d.closed.cleanup)}`);
  }
  if (problems.length > 0) {
    console.error(`fastfail: ${problems.join("; ")}`);
    for (const d of data.filter((x) => !x.complete)) {
      const tail = d.result.stderr.split("\n").filter((l) => !l.startsWith("{") && l.trim()).slice(-15);
      if (tail.length > 0) console.error(tail.join("\n"));
    }
    return 1;
  }
  return 0;
}

process.exit(await main());
