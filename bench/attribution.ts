// Attribution of short-lived clients: how many bypass_detect lines name the right process (pid and
// executable) when 100 bypassing processes run one after another, each gone a few milliseconds
// after its attempt. Per client kind, side by side in the same run.
//
//   node_modules/.bin/bun bench/attribution.ts [--n 100] [--compiled]
//
// Needs root. One `proxywall run --state-dir /run/proxywall-bench -- python3 DRIVER`; events on
// stderr, read by the benchmark as they arrive. The driver (CMD, root inside the namespace) starts
// the clients one at a time, 10 ms apart, as
//   sh -c 'echo $$; exec "$@"' sh CLIENT ARGS...
// so each prints its own pid and then becomes the client; the driver reports pid, exit code and
// how long it ran. Client kinds, in turn:
//   curl        curl --noproxy '*' http://DST:80/     (TCP; curl exits at the reset)
//   bash        bash -c ': </dev/tcp/DST/443'         (TCP, bash's own connect)
//   python tcp  python3: socket().connect_ex((DST, 443)), then exits
//   python udp  python3: a DNS query (A example.com) to DST:53 on a connected UDP socket, as the
//               C library's resolver sends it; the reject fails send() with EPERM and the client
//               exits at once; to port 53 it reaches proxywall's DNS responder (answered REFUSED
//               while its socket is open), so its line comes from the responder
//   getent / curl name / python gai / node lookup
//               name lookups through the C library's getaddrinfo (getent ahosts NAME, curl
//               --noproxy '*' http://NAME/, python socket.getaddrinfo, node dns.lookup), each
//               exiting right after the failure; NAME is c<i>.attribution.test, and the queries go
//               to /etc/resolv.conf's server, which the sandbox redirects to its responder
// Client i goes to 198.51.100.(i+1) (or asks for c<i>.attribution.test), which is how its line is found. All are rejected inside the
// namespace; nothing leaves it. A line is right when process.resolved, process.pid is the printed
// pid and process.exe is the client binary (realpath). Prints the count (target: at least 99 of
// 100), per kind, and every miss with process.why. Exit 0 unless the benchmark itself broke.
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { leftBehind, Leftovers, namespacesNote } from "./cleanup.ts";
import { proxywallUnderTest } from "./compiled.ts";
import { checkLive, interrupted, runLive } from "./live.ts";
import { flag, fmtMs, quantile, readyOf, requireRootLinux, runArgv, STATE_DIR, systemTool, table, tally, type Event } from "./support.ts";

const TARGET = 0.99;

const N = flag("--n", 100, 8, 800);

const KINDS = ["curl", "bash", "python tcp", "python udp", "getent", "curl name", "python gai", "node lookup"] as const;
/** Kinds whose line is found by the name asked (dns_query), not by the destination. */
const BY_NAME: ReadonlySet<Kind> = new Set(["getent", "curl name", "python gai", "node lookup"]);
type Kind = (typeof KINDS)[number];

const PY_GAI = `import socket, sys
try:
    socket.getaddrinfo(sys.argv[1], 80)
except OSError:
    sys.exit(1)`;

const NODE_LOOKUP = `require("dns").lookup(process.argv[1], (e) => process.exit(e ? 1 : 0))`;

const PY_TCP = `import socket, sys
socket.socket().connect_ex((sys.argv[1], 443))`;

const PY_UDP = `import os, socket, struct, sys
q = struct.pack(">HHHHHH", os.getpid() & 0xffff, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "example.com".split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], 53))
try:
    s.send(q)
    s.recv(512)
except OSError:
    sys.exit(1)`;

const DRIVER_PY = String.raw`
import json, os, subprocess, sys, time

CFG = json.loads(sys.argv[1])

def out(**o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()

out(k="driver", pid=os.getpid())
deadline = time.monotonic() + CFG["budget_s"]
for i, c in enumerate(CFG["clients"]):
    if time.monotonic() > deadline:
        break
    t0 = time.monotonic()
    p = subprocess.Popen(["/bin/sh", "-c", 'echo $$; exec "$@"', "sh"] + c["argv"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        o, _ = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        o, _ = p.communicate()
    ms = (time.monotonic() - t0) * 1000
    first = o.decode(errors="replace").split("\n", 1)[0].strip()
    out(k="client", i=i, kind=c["kind"], dst=c["dst"], pid=int(first) if first.isdigit() else None, rc=p.returncode, ms=ms)
    time.sleep(CFG["gap_ms"] / 1000.0)
time.sleep(0.5)
out(k="done")
`;

interface ClientRun {
  i: number;
  kind: Kind;
  dst: string;
  pid: number | null;
  rc: number;
  ms: number;
}

type Proc =
  | { resolved: true; pid: number; exe: string | null; cmdline: string[]; ancestors: { pid: number }[] }
  | { resolved: false; why: string }
  | null;

async function main(): Promise<number> {
  requireRootLinux("attribution");
  const tools = { python: systemTool("python3"), curl: systemTool("curl"), bash: systemTool("bash"), getent: systemTool("getent"), node: systemTool("node") };
  if (!tools.python || !tools.curl || !tools.bash || !tools.getent || !tools.node) {
    console.error(`attribution: needs python3, curl and bash (found: ${JSON.stringify(tools)})`);
    return 2;
  }
  const python = tools.python;
  const exe: Record<Kind, string> = {
    curl: realpathSync(tools.curl),
    bash: realpathSync(tools.bash),
    "python tcp": realpathSync(python),
    "python udp": realpathSync(python),
    getent: realpathSync(tools.getent),
    "curl name": realpathSync(tools.curl),
    "python gai": realpathSync(python),
    "node lookup": realpathSync(tools.node),
  };
  const argvOf = (kind: Kind, dst: string): string[] => {
    switch (kind) {
      case "curl":
        return [tools.curl!, "--noproxy", "*", "-sS", "-o", "/dev/null", "--max-time", "5", `http://${dst}:80/`];
      case "bash":
        return [tools.bash!, "-c", `: </dev/tcp/${dst}/443`];
      case "python tcp":
        return [python, "-c", PY_TCP, dst];
      case "python udp":
        return [python, "-c", PY_UDP, dst];
      case "getent":
        return [tools.getent!, "ahosts", dst];
      case "curl name":
        return [tools.curl!, "--noproxy", "*", "-sS", "-o", "/dev/null", "--max-time", "5", `http://${dst}/`];
      case "python gai":
        return [python, "-c", PY_GAI, dst];
      case "node lookup":
        return [tools.node!, "-e", NODE_LOOKUP, dst];
    }
  };
  const clients = Array.from({ length: N }, (_, i) => {
    const kind = KINDS[i % KINDS.length]!;
    // Addresses repeat beyond 250 clients.
    const dst = BY_NAME.has(kind) ? `c${i + 1}.attribution.test` : `198.51.100.${(i % 250) + 1}`;
    return { kind, dst, argv: argvOf(kind, dst) };
  });

  const chosen = proxywallUnderTest();
  const pw = chosen.pw;
  const leftovers = new Leftovers();
  const ids = new Set<string>();
  const dir = mkdtempSync(join(tmpdir(), "proxywall-attribution-"));
  const runs: ClientRun[] = [];
  const lines = new Map<string, Event[]>();
  let driverPid: number | null = null;
  let finished = false;
  let problems: string[] = [];
  let ready: Event | undefined;
  try {
    chmodSync(dir, 0o755);
    const driver = join(dir, "driver.py");
    writeFileSync(driver, DRIVER_PY);
    console.error(`attribution: ${N} short-lived clients (${KINDS.join(", ")}) one after another through ${pw.name}; about ${Math.ceil(N / 10)} s`);
    const { result: r } = await runLive(runArgv(pw, [python, driver, JSON.stringify({ clients, gap_ms: 10, budget_s: 300 })]), {
      deadlineMs: 420_000,
      onEvent: (e) => {
        if (e.event === "sandbox_ready") {
          leftovers.trackEvents([e]);
          ids.add(String(e.sandbox));
        }
        if (e.event !== "bypass_detect") return;
        const name = typeof e.dns_query === "string" && e.dns_query.endsWith(".attribution.test") ? e.dns_query : null;
        const d = name ?? String(e.dst_addr);
        lines.set(d, [...(lines.get(d) ?? []), e]);
      },
      onStdoutLine: (text) => {
        if (!text.startsWith("{")) return;
        const o = JSON.parse(text) as Record<string, unknown>;
        if (o.k === "driver") driverPid = o.pid as number;
        else if (o.k === "client") runs.push(o as unknown as ClientRun);
        else if (o.k === "done") finished = true;
      },
    });
    ready = readyOf(r.events);
    problems = checkLive("proxywall run", r, !!finished, "driver");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    chosen.cleanup();
    problems.push(...leftBehind(leftovers, ids));
  }

  console.log(`kernel ${release()}; proxywall ${pw.name}, state dir ${STATE_DIR}`);
  if (chosen.note) console.log(chosen.note);
  if (ready) console.log(`sandbox ${ready.sandbox}: backend ${ready.backend}, log ${ready.log}, monitor ${ready.monitor}, detection ${ready.detection}`);
  console.log(`clients: ${N}, kinds in turn, client i to 198.51.100.(i+1) or asking for ci.attribution.test, 10 ms between one's exit and the next one's start`);
  console.log("");

  const holdsArg = (argv: string[], dst: string) => {
    const re = new RegExp(`(^|[^0-9a-z.])${dst.replaceAll(".", "\\.")}([^0-9a-z.]|$)`);
    return argv.some((a) => re.test(a));
  };
  // CMD in a PID namespace of its own: the driver's pid there is small (1-9), not proxywall's view.
  const pidNamespace = driverPid !== null && driverPid < 10;
  if (pidNamespace) console.log(`CMD runs in a PID namespace of its own (the driver is pid ${driverPid} there): a line is right when its exe is the client's and its command line holds the client's own destination`);
  type Verdict = "right" | "wrong pid" | "wrong exe" | "unresolved" | "no line" | "no pid printed";
  const results: { c: ClientRun; verdict: Verdict; detail: string; line: Event | undefined; extra: number; toCmd: boolean }[] = [];
  for (const c of runs) {
    const ls = lines.get(c.dst) ?? [];
    const line = ls[0];
    const p = (line?.process ?? null) as Proc;
    let verdict: Verdict;
    let detail = "";
    if (c.pid === null) verdict = "no pid printed";
    else if (!line) verdict = "no line";
    else if (!p || !p.resolved) {
      verdict = "unresolved";
      detail = p ? p.why : "process: null";
    } else if (p.pid !== c.pid && !(pidNamespace && holdsArg(p.cmdline, c.dst))) {
      // In its own PID namespace CMD's clients print their pid there; the line names the pid
      // proxywall sees. The client's own argument (its unique destination) then says it is it.
      verdict = "wrong pid";
      detail = `pid ${p.pid} (${p.exe} ${p.cmdline.slice(1).join(" ").slice(0, 60)}), expected ${c.pid}`;
    } else if (p.exe !== exe[c.kind]) {
      verdict = "wrong exe";
      detail = `exe ${p.exe}, expected ${exe[c.kind]}`;
    } else verdict = "right";
    const toCmd = !!p && p.resolved && p.ancestors.length > 0 && p.ancestors[p.ancestors.length - 1]!.pid === driverPid;
    results.push({ c, verdict, detail, line, extra: Math.max(0, ls.length - 1), toCmd });
  }

  const rows: string[][] = [["client", "runs", "right pid+exe", "unresolved", "wrong", "no line", "line source", "client ran ms (median)", "exit codes"]];
  const count = (rs: typeof results, v: Verdict | Verdict[]) => rs.filter((r) => (Array.isArray(v) ? v : [v]).includes(r.verdict)).length;
  for (const kind of [...KINDS, "all"] as const) {
    const rs = kind === "all" ? results : results.filter((r) => r.c.kind === kind);
    rows.push([
      kind,
      String(rs.length),
      String(count(rs, "right")),
      String(count(rs, "unresolved")),
      String(count(rs, ["wrong pid", "wrong exe"])),
      String(count(rs, ["no line", "no pid printed"])),
      tally(rs.filter((r) => r.line).map((r) => String(r.line!.source)), ","),
      fmtMs(quantile(rs.map((r) => r.c.ms), 0.5)),
      tally(rs.map((r) => String(r.c.rc)), ","),
    ]);
  }
  console.log(table(rows));
  console.log("");
  const right = count(results, "right");
  const misses = results.filter((r) => r.verdict !== "right");
  if (misses.length > 0) {
    console.log("misses:");
    for (const m of misses) console.log(`  #${m.c.i + 1} ${m.c.kind} -> ${m.c.dst} (pid ${m.c.pid ?? "?"}, ran ${fmtMs(m.c.ms)} ms): ${m.verdict}${m.detail ? `: ${m.detail}` : ""}`);
  }
  const resolvedRight = results.filter((r) => r.verdict === "right");
  console.log(`ancestors end at CMD (the driver, pid ${driverPid ?? "?"}): ${resolvedRight.filter((r) => r.toCmd).length} of ${resolvedRight.length} right lines`);
  const extras = results.reduce((n, r) => n + r.extra, 0);
  if (extras > 0) console.log(`more than one line for a client: ${extras} extra line(s) (a retransmitted SYN, say)`);
  const want = Math.ceil(TARGET * N);
  console.log(`target (at least ${want} of ${N} lines with the right pid and exe): ${right >= want ? "met" : "NOT met"} (${right} of ${results.length})`);
  console.log(namespacesNote(ids));

  if (interrupted()) problems.push(`interrupted by ${interrupted()}`);
  if (runs.length !== N) problems.push(`the driver ran ${runs.length} of ${N} clients`);
  if (problems.length > 0) {
    console.error(`attribution: ${problems.join("; ")}`);
    return 1;
  }
  return 0;
}

process.exit(await main());
