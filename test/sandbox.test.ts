// `proxywall run` against the real kernel, ip, nft/iptables and real clients (root only).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer, type Server } from "node:net";
import { createSocket, type Socket } from "node:dgram";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { selfSignedCert } from "./support/cert.ts";
import { eventsOf, splitStderr } from "./support/events.ts";
import { describePrivileged, hostSnapshot, MAIN, proxywall, ROOT, TEST_ARGS, TEST_STATE_DIR } from "./support/privileged.ts";
import { background } from "./support/process.ts";
import { tempDir, type TempDir } from "./support/temp.ts";
import { waitFor } from "./support/wait.ts";
import { linkToHost, testNetns, type TestNetns } from "./support/netns.ts";
import { inNetns } from "../src/sys/netns.ts";
import { admitAll } from "./support/admit.ts";

const CLIENTS = join(ROOT, "test/support/clients.sh");

interface ClientResult {
  name: string;
  rc: number;
  ms: number;
  out: string;
}

function parseClients(stdout: string): ClientResult[] {
  return stdout
    .split("\n")
    .filter((l) => l.includes("\t"))
    .map((l) => {
      const [name, rc, ms, out] = l.split("\t");
      return { name: name!, rc: Number(rc), ms: Number(ms), out: out ?? "" };
    });
}

/** Starts proxywall; `ready` resolves true once its sandbox_ready line is out, false if it never comes (for signal tests). */
async function startRun(args: string[], env?: Record<string, string>) {
  const run = background([process.execPath, MAIN, "run", ...TEST_ARGS, ...args], env ? { env } : {});
  const ready = waitFor("sandbox_ready", () => (run.out.stderr.includes('"event":"sandbox_ready"') ? "ready" : run.closed && "closed"), 20_000).then(
    (r) => r === "ready",
    () => false,
  );
  const finish = async () => {
    const code = await run.finish(20_000);
    return { code, stdout: run.out.stdout, stderr: run.out.stderr, ...splitStderr(run.out.stderr) };
  };
  return { p: run.p, ready, finish };
}

describePrivileged("proxywall run (real namespaces and rules)", () => {
  let tcp4: Server;
  let tcp6: Server;
  let udp4: Socket;
  let udp6: Socket;
  let port = 0;
  let udpPort = 0;
  let web: ReturnType<typeof Bun.serve>;
  let tls: ReturnType<typeof Bun.serve>;
  let certDir: TempDir | undefined;

  // Direct connects go to servers in a target namespace that CMD joins by moving the sandbox's
  // sink link there (the sandbox has no host side); proxied requests go to servers in an upstream
  // namespace joined to proxywall's own by a veth pair, which --allow lets the guard pass.
  let target: TestNetns;
  let upstream: TestNetns;
  let upLink: ReturnType<typeof linkToHost>;
  let allowWeb: string[];
  let webUrl = "";

  beforeAll(async () => {
    target = testNetns("tgt");
    upstream = testNetns("web");
    upLink = linkToHost(upstream, "10.209.8.0", "fd70:7099:8");
    // A plain TCP server on every address, on a port that is not the proxy's.
    // Speaks just enough HTTP for curl; the other clients only connect.
    const hello = (s: import("node:net").Socket) => s.end("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
    // Listening sockets made inside the target namespace stay there.
    await inNetns(target.path, async () => {
      tcp4 = createServer(hello);
      tcp4.listen(0, "0.0.0.0");
      tcp6 = createServer(hello);
      udp4 = createSocket("udp4");
      udp6 = createSocket({ type: "udp6", ipv6Only: true });
    });
    await new Promise<void>((r) => (tcp4.listening ? r() : tcp4.once("listening", r)));
    port = (tcp4.address() as { port: number }).port;
    inNetns(target.path, () => tcp6.listen({ port, host: "::", ipv6Only: true }));
    inNetns(target.path, () => udp4.bind(0, "0.0.0.0"));
    await new Promise<void>((r) => (udp4.once("listening", r)));
    udpPort = udp4.address().port;
    inNetns(target.path, () => udp6.bind(udpPort, "::"));
    web = inNetns(upstream.path, () => Bun.serve({ hostname: "::", port: 0, fetch: (req) => new Response(`origin saw ${new URL(req.url).pathname}\n`) }));
    certDir = tempDir("pw-tls-");
    const pem = selfSignedCert(certDir.root);
    tls = inNetns(upstream.path, () =>
      Bun.serve({
        hostname: "::",
        port: 0,
        tls: { cert: Bun.file(pem.cert), key: Bun.file(pem.key) },
        fetch: () => new Response("secret origin\n"),
      }),
    );
    allowWeb = ["--allow", `${upLink.ns4}:${web.port},${tls.port}`, "--allow", `[${upLink.ns6}]:${web.port}`];
    webUrl = `http://${upLink.ns4}:${web.port}`;
  });

  afterAll(() => {
    tcp4?.close();
    tcp6?.close();
    udp4?.close();
    udp6?.close();
    web?.stop(true);
    tls?.stop(true);
    certDir?.remove();
    upLink?.remove();
    upstream?.remove();
    target?.remove();
  });

  test("direct TCP connects are refused at once by every client, IPv4 and IPv6; UDP fails at once; without the rules they connect", async () => {
    const before = hostSnapshot();
    const script = `
      ip link set pw1 netns ${target.name}
      nsenter --net=${target.path} sh -ec 'ip addr add 10.200.0.1/30 dev pw1; ip addr add fd70:7077::1/64 dev pw1 nodad; ip link set pw1 up'
      H4=10.200.0.1 H6=fd70:7077::1
      echo "== fenced"; bash ${CLIENTS} "$H4" "$H6" ${port} ${udpPort}
      nft delete table inet proxywall || for t in iptables-legacy ip6tables-legacy iptables ip6tables; do $t -P OUTPUT ACCEPT; $t -F OUTPUT; done 2>/dev/null
      echo "== control"; bash ${CLIENTS} "$H4" "$H6" ${port} ${udpPort}`;
    // CMD moves a link and removes the rules itself: it needs proxywall's capabilities.
    const r = await proxywall(["run", ...TEST_ARGS, "--keep-caps", "--", "bash", "-c", script], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    const [fencedText, controlText] = r.stdout.split("== control");
    const fenced = parseClients(fencedText!);
    const control = parseClients(controlText!);
    expect(fenced.map((c) => c.name).sort()).toEqual(control.map((c) => c.name).sort());
    expect(fenced).toHaveLength(12);
    for (const c of fenced) {
      expect({ name: c.name, rc: c.rc === 0 ? "connected" : "failed" }).toEqual({ name: c.name, rc: "failed" });
      if (c.name.includes("udp")) expect(c.out).toContain("PermissionError");
      // curl's exit 7 is its "could not connect" (it prints no errno).
      else if (c.name.startsWith("curl")) expect({ name: c.name, rc: c.rc }).toEqual({ name: c.name, rc: 7 });
      else expect({ name: c.name, refused: /refused|ECONNREFUSED/i.test(c.out) }).toEqual({ name: c.name, refused: true });
      // Not a timing assertion: a client that hung would have hit the 10 s timeout (exit 124).
      expect(c.rc).not.toBe(124);
    }
    for (const c of control) expect({ name: c.name, rc: c.rc }).toEqual({ name: c.name, rc: 0 });
    expect(hostSnapshot()).toEqual(before);
  });

  test("plain http through the built-in proxy, and https through CONNECT", async () => {
    const before = hostSnapshot();
    const script = `
      curl -sS -m 10 "${webUrl}/through/proxy" &&
      curl -sS -m 10 -k "https://${upLink.ns4}:${tls.port}/" &&
      curl -sS -m 10 --proxy "http://[::1]:3128" "http://[${upLink.ns6}]:${web.port}/v6/proxy"`;
    const r = await proxywall(["run", ...TEST_ARGS, ...allowWeb, "--", "bash", "-c", script], { timeoutMs: 60_000 });
    expect(r.text.filter((l) => !l.startsWith("proxywall:"))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("origin saw /through/proxy\nsecret origin\norigin saw /v6/proxy\n");
    const connects = eventsOf(r.events, "proxy_connect");
    expect(connects.map((e) => [e.method, e.dst_port, e.outcome, e.status])).toEqual([
      ["GET", web.port, "ok", 200],
      ["CONNECT", tls.port, "ok", 200],
      ["GET", web.port, "ok", 200],
    ]);
    for (const e of r.events) v.parse(EventLine, e);
    expect(hostSnapshot()).toEqual(before);
  });

  test("events: sandbox_ready before CMD, sandbox_closed after cleanup, degraded for a root CMD with --keep-caps; --events file and fd", async () => {
    using dir = tempDir("pw-events-");
    const file = dir.path("events.jsonl");
    writeFileSync(file, '{"earlier":"line"}\n');
    const r = await proxywall(["run", ...TEST_ARGS, "--keep-caps", "--events", file, "--", "sh", "-c", "echo cmd-ran >&2"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("cmd-ran\n");
    const lines = (await Bun.file(file).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ earlier: "line" });
    const events = lines.slice(1);
    // The final bypass_totals (all zero here) comes before sandbox_closed.
    expect(events.map((e) => e.event)).toEqual(["degraded", "sandbox_ready", "bypass_totals", "sandbox_closed"]);
    for (const e of events) v.parse(EventLine, e);
    expect(events[0].component).toBe("privileges");
    expect(events[1].degraded).toEqual(["privileges"]);
    expect(events[2]).toMatchObject({ tcp: 0, udp: 0, other: 0, events: 0, final: true });
    expect(events[3]).toMatchObject({ exit_code: 0, cmd_exit_code: 0, cmd_signal: null, cleanup: [] });

    const asNobody = await proxywall(["run", ...TEST_ARGS, "--user", "65534:65534", "--events", "fd:1", "--", "sh", "-c", "id -u >&2"]);
    expect(asNobody.code).toBe(0);
    expect(asNobody.stderr).toBe("65534\n");
    const ev = asNobody.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(ev.map((e) => e.event)).toEqual(["sandbox_ready", "bypass_totals", "sandbox_closed"]);
    expect(ev[0].degraded).toEqual([]);
  });

  test("CMD gets the proxy environment and the user's own variables", async () => {
    const r = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", "env | sort"], { env: { MY_OWN_VAR: "kept" } });
    expect(r.code).toBe(0);
    const env = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    const ready = eventsOf(r.events, "sandbox_ready")[0]!;
    const url = "http://127.0.0.1:3128";
    expect(ready.proxy.url).toBe(url);
    for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "GRPC_PROXY"]) expect(env[k]).toBe(url);
    expect(env.NO_PROXY).toBe("localhost,127.0.0.1,::1");
    expect(env.NODE_USE_ENV_PROXY).toBe("1");
    expect(env.MY_OWN_VAR).toBe("kept");
  });

  test("run restarts itself once, same pid, without JavaScriptCore's optimizing tiers; CMD never sees it; a user's own BUN_JSC_ choice is left alone", async () => {
    // CMD prints the JIT variables in its own environment; proxywall's (same pid: the re-execution
    // keeps it) is read from outside while CMD runs, since CMD's PID namespace does not show it.
    const jitVars = (text: string, tag: string) => text.split(/[\0\n]/).filter((l) => /^(BUN_JSC_|PROXYWALL_REEXECUTED)/.test(l)).map((l) => `${tag}:${l}`);
    const script = `env | grep -E '^(BUN_JSC_|PROXYWALL_REEXECUTED)'; sleep 0.5; true`;
    const ours = await startRun(["--", "sh", "-c", script]);
    expect(await ours.ready).toBe(true);
    const outer = readFileSync(`/proc/${ours.p.pid}/environ`, "latin1");
    const r = await ours.finish();
    expect(r.code).toBe(0);
    expect([...jitVars(r.stdout, "cmd"), ...jitVars(outer, "proxywall")].sort()).toEqual(["proxywall:BUN_JSC_useDFGJIT=0", "proxywall:BUN_JSC_useFTLJIT=0", "proxywall:PROXYWALL_REEXECUTED=1"]);

    const theirs = await startRun(["--", "sh", "-c", script], { BUN_JSC_useFTLJIT: "1" });
    expect(await theirs.ready).toBe(true);
    const theirOuter = readFileSync(`/proc/${theirs.p.pid}/environ`, "latin1");
    const t = await theirs.finish();
    expect(t.code).toBe(0);
    expect([...jitVars(t.stdout, "cmd"), ...jitVars(theirOuter, "proxywall")].sort()).toEqual(["cmd:BUN_JSC_useFTLJIT=1", "proxywall:BUN_JSC_useFTLJIT=1"]);
  });

  test("exit codes: CMD's own, 128+N for a signal, 127 for a missing command; nothing left behind", async () => {
    const before = hostSnapshot();
    expect((await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", "exit 7"])).code).toBe(7);
    const crashed = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", "kill -SEGV $$"]);
    expect(crashed.code).toBe(139);
    expect(eventsOf(crashed.events, "sandbox_closed")[0]).toMatchObject({ exit_code: 139, cmd_signal: "SIGSEGV" });
    const missing = await proxywall(["run", ...TEST_ARGS, "--", "/nonexistent/command"]);
    expect(missing.code).toBe(127);
    expect(missing.text.some((l) => l.includes("command not found"))).toBe(true);
    expect(hostSnapshot()).toEqual(before);
  });

  test("processes CMD leaves running in the sandbox are ended with it: nothing left behind", async () => {
    const before = hostSnapshot();
    const leftover = () => Bun.spawnSync(["pgrep", "-f", "^sleep 28.5$"]).exitCode === 0;
    const r = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", "sleep 28.5 >/dev/null 2>&1 & exit 0"]);
    expect(r.code).toBe(0);
    expect(r.text.some((l) => l.includes("ended 1 process CMD left running"))).toBe(true);
    expect(leftover()).toBe(false);
    expect(hostSnapshot()).toEqual(before);
  });

  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const) {
    test(`${sig} to proxywall reaches CMD; CMD's handler decides the exit; all is removed`, async () => {
      const before = hostSnapshot();
      const name = sig.slice(3);
      const run = await startRun(["--", "bash", "-c", `trap 'echo got-${name}; exit 42' ${name}; for i in $(seq 200); do sleep 0.05; done; exit 9`]);
      expect(await run.ready).toBe(true);
      await Bun.sleep(100);
      run.p.kill(sig);
      const r = await run.finish();
      expect(r.stdout).toBe(`got-${name}\n`);
      expect(r.code).toBe(42);
      expect(hostSnapshot()).toEqual(before);
    });
  }

  test("SIGTERM to proxywall with a CMD that does not trap it: exit 143, nothing left", async () => {
    const before = hostSnapshot();
    const run = await startRun(["--", "sleep", "20"]);
    expect(await run.ready).toBe(true);
    run.p.kill("SIGTERM");
    const r = await run.finish();
    expect(r.code).toBe(143);
    expect(eventsOf(r.events, "sandbox_closed")[0]).toMatchObject({ cmd_signal: "SIGTERM", cleanup: [] });
    expect(hostSnapshot()).toEqual(before);
  });

  test("SIGKILL to proxywall leaves a stale sandbox that ls reports and gc removes, CMD included", async () => {
    const before = hostSnapshot();
    const run = await startRun(["--", "sleep", "29.5"]);
    expect(await run.ready).toBe(true);
    const cmdAlive = () => Bun.spawnSync(["pgrep", "-f", "^sleep 29.5$"]).exitCode === 0;
    // sandbox_ready comes just before CMD is spawned: wait until CMD really runs.
    for (let i = 0; i < 100 && !cmdAlive(); i++) await Bun.sleep(20);
    expect(cmdAlive()).toBe(true);
    run.p.kill("SIGKILL");
    await run.p.exited;
    expect(hostSnapshot().netns.length).toBe(before.netns.length + 1);
    const ls = await proxywall(["ls", "--state-dir", TEST_STATE_DIR, "--json"]);
    const rows = ls.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(rows).toHaveLength(1);
    expect(rows[0].alive).toBe(false);
    const gc = await proxywall(["gc", "--state-dir", TEST_STATE_DIR]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toBe(`removed ${rows[0].id} (killed 1 process still inside)\n`);
    expect(cmdAlive()).toBe(false);
    expect(hostSnapshot()).toEqual(before);
  });

  test("10 sandboxes at once, each with the same inside addresses and proxy port: all work through their own door, all removed", async () => {
    const before = hostSnapshot();
    const runs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => proxywall(["run", ...TEST_ARGS, ...allowWeb, "--", "curl", "-sS", "-m", "10", `${webUrl}/sandbox/${i}`], { timeoutMs: 60_000 })),
    );
    const namespaces = new Set<string>();
    runs.forEach((r, i) => {
      // The diagnostics go into the comparison, so a failure says why.
      expect({ i, code: r.code, out: r.stdout, why: r.code === 0 ? "" : r.text.join(" | ") }).toEqual({ i, code: 0, out: `origin saw /sandbox/${i}\n`, why: "" });
      const ready = eventsOf(r.events, "sandbox_ready")[0]!;
      expect(ready).toMatchObject({ sandbox_ipv4: "10.200.0.2", proxy: { url: "http://127.0.0.1:3128" } });
      namespaces.add(ready.netns);
      expect(eventsOf(r.events, "proxy_connect").map((e) => e.outcome)).toEqual(["ok"]);
    });
    expect(namespaces.size).toBe(10);
    expect(hostSnapshot()).toEqual(before);
  });

  test("bad input: one line on stderr, exit 2, host unchanged", async () => {
    const before = hostSnapshot();
    const cases: [string[], RegExp][] = [
      [["run", "--proxy-port", "0", "--", "true"], /--proxy-port: must be at least 1/],
      [["run", "--proxy-port", "70000", "--", "true"], /--proxy-port: must be at most 65535/],
      [["run", "--proxy-port", "abc", "--", "true"], /--proxy-port: must be a whole number/],
      [["run", "--user", "no-such-user-here", "--", "true"], /--user: no such user/],
      [["run", "--user", "1:2:3", "--", "true"], /--user: must be UID/],
      [["run", "--bogus", "--", "true"], /unknown option --bogus/],
      [["run"], /no command to run/],
      [["run", "--"], /no command to run/],
      [["run", "--events", "x".repeat(5000), "--", "true"], /--events: is too long/],
      [["run", "--pool", "10.200.0.0/16", "--", "true"], /unknown option --pool/],
      [["run", "--external-proxy", "host.example:3128", "--", "true"], /--external-proxy: must be PORT or ADDRESS:PORT/],
      [["run", "--allow", "*.com", "--", "true"], /\*\.com/],
      [["run", "--policy-mode", "lenient", "--", "true"], /--policy-mode: must be enforce or audit/],
      [["run", "--idle-timeout", "0", "--", "true"], /--idle-timeout: must be at least 1/],
      [["run", "--backend", "ebpf", "--", "true"], /--backend: must be nft or iptables/],
      [["run", "--events", "fd:999", "--", "true"], /--events: file descriptor 999 is not open/],
      [["nonsense"], /unknown command nonsense/],
    ];
    for (const [args, message] of cases) {
      const r = await proxywall([...args.slice(0, 1), ...(args[0] === "run" ? ["--state-dir", TEST_STATE_DIR] : []), ...args.slice(1)]);
      const lines = r.stderr.trim().split("\n");
      expect({ args, code: r.code, lines: lines.length }).toEqual({ args, code: 2, lines: 1 });
      expect(lines[0]).toMatch(message);
      expect(r.stdout).toBe("");
    }
    expect(hostSnapshot()).toEqual(before);
  });

  test("missing privileges: exit 3, one line, host unchanged", async () => {
    const before = hostSnapshot();
    const setpriv = Bun.which("setpriv");
    if (setpriv) {
      const p = Bun.spawnSync([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, MAIN, "run", "--state-dir", "/tmp/pw-nobody-state", "--", "true"]);
      expect(p.exitCode).toBe(3);
      expect(p.stderr.toString().trim().split("\n")).toHaveLength(1);
      expect(p.stderr.toString()).toContain("needs root");
    }
    expect(hostSnapshot()).toEqual(before);
  });

  test("fail closed: when the rejects cannot be installed CMD never starts, exit 3; --allow-degraded runs it loudly", async () => {
    // Firewall tools that refuse everything, found first on PATH: the fence cannot be installed.
    using fake = tempDir("pw-faketools-");
    const stateDir = "/run/proxywall-test-fence";
    try {
      for (const tool of ["nft", "iptables-restore", "ip6tables-restore", "iptables-legacy-restore", "ip6tables-legacy-restore"]) {
        writeFileSync(fake.path(tool), `#!/bin/sh\necho "${tool}: Operation not supported (fake)" >&2\nexit 1\n`, { mode: 0o755 });
      }
      const env = { PATH: `${fake.root}:${process.env.PATH}` };
      const args = ["run", "--state-dir", stateDir];
      const before = hostSnapshot();
      const r = await proxywall([...args, "--", "sh", "-c", "echo CMD-RAN"], { env });
      expect(r.code).toBe(3);
      expect(r.stdout).toBe("");
      expect(r.text.some((l) => l.includes("cannot build the sandbox") && l.includes("fake"))).toBe(true);
      expect(eventsOf(r.events, "sandbox_ready")).toEqual([]);
      expect(eventsOf(r.events, "sandbox_closed")[0]).toMatchObject({ exit_code: 3, cleanup: [] });
      expect(hostSnapshot()).toEqual(before);

      const d = await proxywall([...args, "--allow-degraded", "--", "sh", "-c", "echo CMD-RAN"], { env });
      expect(d.code).toBe(0);
      expect(d.stdout).toBe("CMD-RAN\n");
      const fence = eventsOf(d.events, "degraded").find((e) => e.component === "fence");
      expect(fence?.missing).toContain("firewall rules could not be installed");
      expect(eventsOf(d.events, "sandbox_ready")[0]).toMatchObject({ backend: null, monitor: "off", detection: "off" });
      expect(hostSnapshot()).toEqual(before);
    } finally {
      await proxywall(["gc", "--state-dir", stateDir]);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("--external-proxy: no built-in proxy; the door relays to the user's proxy on proxywall's own loopback", async () => {
    const { startProxy } = await import("../src/proxy/http-proxy.ts");
    const seen: string[] = [];
    const theirs = await startProxy({ listen: [{ host: "127.0.0.1", port: 0 }], sandbox: "external", onEvent: (e) => seen.push(e.dst_host), admit: admitAll });
    try {
      const r = await proxywall(["run", ...TEST_ARGS, "--external-proxy", String(theirs.ports[0]), "--", "curl", "-sS", "-m", "10", `${webUrl}/via/external`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("origin saw /via/external\n");
      expect(seen).toEqual([upLink.ns4]);
      expect(eventsOf(r.events, "sandbox_ready")[0]!.proxy).toMatchObject({ builtin: false, port: 3128, url: "http://127.0.0.1:3128" });
      expect(eventsOf(r.events, "proxy_connect")).toEqual([]);
    } finally {
      await theirs.close();
    }
  });

  test("as PID 1, proxywall reaps orphaned grandchildren: no zombies", async () => {
    // CMD leaves two orphans that exit while it still runs; they are re-parented to PID 1.
    const script = "(sleep 0.2 &); (sleep 0.3 &); sleep 1; ps -eo stat= | grep -c '^Z' || true";
    const p = Bun.spawn(["unshare", "--pid", "--fork", "--mount-proc", process.execPath, MAIN, "run", ...TEST_ARGS, "--", "sh", "-c", script], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out.trim()).toBe("0");
  });

  test("run --dry-run prints the plan and changes nothing", async () => {
    const before = hostSnapshot();
    const r = await proxywall(["run", ...TEST_ARGS, "--dry-run", "--", "true"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("# proxywall's own namespace: in-process, as ip netns add does (mount, unshare, bind mount)\nnetns add pw-");
    expect(r.stdout).toContain("link add pw0 type veth peer name pw1\n");
    expect(r.stdout).toContain("table inet proxywall {");
    expect(r.stdout).toContain("# teardown, proxywall's own namespace: in-process, as ip netns del does (umount, unlink)\nnetns del pw-");
    expect(hostSnapshot()).toEqual(before);
  });
});
