// bench/policy.ts's proxied part: what a 1,000-rule policy adds to a request through the real
// built-in proxy, and what a CONNECT tunnel carries against a direct download of the same file.
//
// Everything runs in two namespaces this makes and removes (even on failure): "proxy", with the
// two proxies, the bare relay (bare-relay.py, python3) and the client (on its loopback), and
// "upstream", with the HTTP server, joined by a veth pair on 10.209.16.0/30. The machine's own network is not touched, and no request leaves
// these two namespaces. The upstream's address is private: the proxy's guard refuses it unless a
// rule names it by address or CIDR, so the smaller policy is that one rule, and the larger one has
// it among 999 others.
import { rmSync } from "node:fs";
import { enterNetns, makeNetnsPair, removeNetns } from "./netns-pair.ts";
import { fmtMs, quantile, randomId, requireTool, table } from "./support.ts";

const PROXY_ADDR = "10.209.16.1";
const UPSTREAM_ADDR = "10.209.16.2";
const ROLES = `${import.meta.dir}/policy-roles.ts`;
const BARE_RELAY = `${import.meta.dir}/bare-relay.py`;
/** What proxywall's run executes itself with, unless the user chose JIT options. */
const PROXYWALL_TIERS = "BUN_JSC_useDFGJIT" in process.env || "BUN_JSC_useFTLJIT" in process.env ? {} : { BUN_JSC_useDFGJIT: "0", BUN_JSC_useFTLJIT: "0" };

export interface ProxyBenchOptions {
  requests: number;
  rules: number;
  fileMiB: number;
  fileRuns: number;
}

type Child = Bun.Subprocess<"pipe", "pipe", "pipe">;
/** The ways the file is downloaded, in the order of each round (policy-roles.ts's client). */
const PATHS = ["direct", "tunnel", "bare"] as const;
type Path = (typeof PATHS)[number];

/** The first line a child prints, as JSON, or an error with its stderr when it ends or takes too long. */
async function firstLine(c: Child, what: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const reader = c.stdout.getReader();
  let text = "";
  const read = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      text += new TextDecoder().decode(value);
      if (text.includes("\n")) return text.slice(0, text.indexOf("\n"));
    }
  })();
  const line = await Promise.race([read, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
  reader.releaseLock();
  if (line === null || line === "timeout") {
    c.kill("SIGKILL");
    const err = await Promise.race([new Response(c.stderr).text(), Bun.sleep(1000).then(() => "")]);
    throw new Error(`${what}: ${line === null ? "ended" : `no answer within ${timeoutMs / 1000} s`}: ${err.trim().split("\n").slice(-5).join(" | ")}`);
  }
  return JSON.parse(line) as Record<string, unknown>;
}

function stats(ms: number[]): { p50: number; p90: number } {
  return { p50: quantile(ms, 0.5), p90: quantile(ms, 0.9) };
}

/** Runs the proxied part and prints its figures; returns problems (an empty list when all went well). */
export async function proxyBench(o: ProxyBenchOptions): Promise<string[]> {
  const id = randomId();
  const [proxyNs, upNs] = [`pwbench-pol-${id}`, `pwbench-pol-${id}-up`];
  const file = `${process.env.TMPDIR ?? "/tmp"}/proxywall-bench-policy-${id}.bin`;
  const children: Child[] = [];
  const spawnCmd = (ns: string, cmd: string[], env: Record<string, string | undefined> = process.env) => {
    const c: Child = Bun.spawn([...enterNetns(ns), ...cmd], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env });
    children.push(c);
    return c;
  };
  const spawn = (ns: string, args: string[], env: Record<string, string | undefined> = process.env) => spawnCmd(ns, [process.execPath, ROLES, ...args], env);
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  async function cleanup(): Promise<string[]> {
    for (const c of children) {
      c.stdin.end();
      if (!(await Promise.race([c.exited.then(() => true), Bun.sleep(3000).then(() => false)]))) c.kill("SIGKILL");
      await c.exited;
    }
    const left = removeNetns([upNs, proxyNs]);
    rmSync(file, { force: true });
    return left;
  }
  try {
    makeNetnsPair({ ns: proxyNs, veth: "pwbp0", addr: PROXY_ADDR }, { ns: upNs, veth: "pwbp1", addr: UPSTREAM_ADDR });
    const fileBytes = o.fileMiB * 1048576;
    // Bytes that do not compress or repeat in short runs; written once, sent with sendfile(2).
    const chunk = crypto.getRandomValues(new Uint8Array(1048576));
    await Bun.write(file, new Blob(Array.from({ length: o.fileMiB }, () => chunk)));

    const upChild = spawn(upNs, ["upstream", UPSTREAM_ADDR, file]);
    const up = await firstLine(upChild, "the upstream server", 20_000);
    const upstream = `${UPSTREAM_ADDR}:${up.port as number}`;
    // The proxies run as proxywall's run runs them: without JavaScriptCore's optimizing tiers (src/sys/jit-tiers.ts).
    const proxyEnv = { ...process.env, ...PROXYWALL_TIERS };
    const pxChild = spawn(proxyNs, ["proxy", `10.209.16.0/30:${up.port as number}`, String(o.rules)], proxyEnv);
    const px = await firstLine(pxChild, "the proxies", 60_000);
    const [portA, portB] = px.ports as number[];
    // The floor: a bare splice relay of another implementation, no HTTP and no policy.
    const relayChild = spawnCmd(proxyNs, [requireTool("python3"), BARE_RELAY, UPSTREAM_ADDR, String(up.port as number)]);
    const relay = await firstLine(relayChild, "the bare relay", 20_000);
    const rules = px.rules as number[];
    const timeoutS = 60 + o.requests * 3 * 0.05 + o.fileRuns * 3 * 30;
    // nsenter --net execs the command in place: each child's pid is the role's own, whose CPU time the client reads.
    const pids = [String(pxChild.pid), String(upChild.pid), String(relayChild.pid)];
    const ports = [String(portA), String(portB), String(relay.port as number)];
    const res = await firstLine(spawn(proxyNs, ["client", upstream, ...ports, String(o.requests), String(fileBytes), String(o.fileRuns), ...pids]), "the client", timeoutS * 1000);
    const ms = res.ms as { direct: number[]; one: number[]; many: number[] };
    const mibs = res.mibs as Record<Path, number[]>;
    type CpuRun = { client: number; proxy: number; upstream: number; machine: number };
    const cpu = res.cpu as Record<Path, CpuRun[]>;

    const [d, one, many] = [stats(ms.direct), stats(ms.one), stats(ms.many)];
    console.log(
      `\nproxied requests: ${o.requests.toLocaleString("en")} of each, interleaved, each on a new connection (client and proxies in one namespace, the upstream in another, over a veth pair; ` +
        `the proxies ${Object.keys(PROXYWALL_TIERS).length > 0 ? "without DFG and FTL, as proxywall's run" : "with the JIT options of this environment"}); ms`,
    );
    console.log(
      table([
        ["path", "median", "p90"],
        ["direct to the upstream (no proxy)", fmtMs(d.p50), fmtMs(d.p90)],
        [`proxy, policy of ${rules[0]} rule (the upstream's CIDR)`, fmtMs(one.p50), fmtMs(one.p90)],
        [`proxy, policy of ${rules[1]!.toLocaleString("en")} rules (the same among others)`, fmtMs(many.p50), fmtMs(many.p90)],
        [`difference (${rules[1]!.toLocaleString("en")} rules - ${rules[0]})`, fmtMs(many.p50 - one.p50), fmtMs(many.p90 - one.p90)],
      ]),
    );
    const added = many.p50 - one.p50;
    console.log(`added latency of ${rules[1]!.toLocaleString("en")} rules at the median: ${fmtMs(added)} ms (target at most 0.3 ms): ${added <= 0.3 ? "ok" : "ABOVE TARGET"}`);

    const med = (p: Path) => quantile(mibs[p], 0.5);
    const [dm, tm, bm] = [med("direct"), med("tunnel"), med("bare")];
    const label: Record<Path, string> = {
      direct: "direct",
      tunnel: `CONNECT tunnel (the ${rules[1]!.toLocaleString("en")}-rule proxy)`,
      bare: "bare splice relay (python3, no HTTP, no policy)",
    };
    console.log(`\nCONNECT throughput: ${o.fileMiB} MiB from the upstream, ${o.fileRuns} runs each, interleaved; MiB/s (median, and every run)`);
    console.log(table([["path", "median", "runs"], ...PATHS.map((p) => [label[p], med(p).toFixed(0), mibs[p].map((x) => x.toFixed(0)).join(" ")])]));
    // CPU seconds per GiB carried, median over the runs: what each party costs the two shared cores.
    const perGiB = (runs: CpuRun[], k: keyof CpuRun) => quantile(runs.map((r) => (r[k] * 1024) / o.fileMiB), 0.5).toFixed(2);
    console.log(`CPU seconds per GiB carried (median of the runs; "proxy" is the relay in the bare row; the machine's busy time includes the kernel's network work charged to no process)`);
    console.log(table([["path", "client", "upstream", "proxy", "machine"], ...PATHS.map((p) => [label[p], ...(["client", "upstream", "proxy", "machine"] as const).map((k) => perGiB(cpu[p], k))])]));
    const ratio = tm / dm;
    // What any relay between the two reaches here: how much of the target this machine allows.
    console.log(`bare relay / direct: ${((bm / dm) * 100).toFixed(0)} %; tunnel / bare relay: ${((tm / bm) * 100).toFixed(0)} %`);
    console.log(`tunnel / direct: ${(ratio * 100).toFixed(0)} % (target at least 80 %): ${ratio >= 0.8 ? "ok" : "BELOW TARGET"}`);
    return await cleanup();
  } catch (e) {
    const left = await cleanup();
    return [(e as Error).message, ...left];
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
