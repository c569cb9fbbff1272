// Real event lines for the report tests: two sandboxes run at once by `proxywall run`, appending to
// one --events file, so their lines are mixed. Sandbox A (--keep-caps: a degraded part) makes a TCP
// and a UDP bypass, a proxied request and a tunnel to a listener this process starts in a test
// namespace (allowed with --allow), and a request the guard refuses (loopback); sandbox B (--user
// 65534) tries DNS over UDP with a real query, a direct TCP connection, and one proxied request.
// Only the test's own namespace and 198.51.100.7 (which the sandbox rejects before a packet
// leaves) are ever addressed.
//
// `bun test/support/report-events.ts FILE` writes such a file (how test/fixtures/events-two-sandboxes.jsonl was made).
import { MAIN, ROOT, TEST_ARGS } from "./privileged.ts";
import { linkToHost, testNetns } from "./netns.ts";
import { inNetns } from "../../src/sys/netns.ts";

const PY = "/usr/bin/python3";
const UDP_DNS =
  "import socket; q=bytes.fromhex('123401000001000000000000076578616d706c6503636f6d0000010001'); " +
  "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry: s.sendto(q, ('198.51.100.7', 53))\nexcept OSError: pass";
const UDP = "import socket\ntry: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.51.100.7', 123))\nexcept OSError: pass";

function scriptA(host: string, port: number): string {
  return [
    `curl -sS --noproxy '*' -m 5 http://198.51.100.7/ 2>/dev/null`,
    `${PY} -c "${UDP}"`,
    `curl -sS -o /dev/null http://${host}:${port}/hello`,
    `curl -sS -o /dev/null -p http://${host}:${port}/tunnel`,
    `curl -sS --noproxy '' -o /dev/null http://127.0.0.1:1/ 2>/dev/null`,
    `sh -c "curl -sS --noproxy '*' -m 5 https://198.51.100.7:8443/ 2>/dev/null"`,
    "true",
  ].join("; ");
}

function scriptB(host: string, port: number): string {
  return [
    `${PY} -c "${UDP_DNS}"`,
    `curl -sS --noproxy '*' -m 5 http://198.51.100.7:8080/ 2>/dev/null`,
    `curl -sS -o /dev/null http://${host}:${port}/from-b`,
    "true",
  ].join("; ");
}

/** Runs both sandboxes at once, appending their event lines to `file`; their exit codes. */
export async function recordTwoSandboxes(file: string): Promise<number[]> {
  const up = testNetns("rep");
  const link = linkToHost(up, "10.209.24.0", "fd70:7099:24");
  const server = inNetns(up.path, () => Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: (req) => new Response(`hello from ${new URL(req.url).pathname}\n`) }));
  try {
    const allow = ["--allow", `${link.ns4}:${server.port}`];
    const run = (extra: string[], script: string) =>
      Bun.spawn([process.execPath, MAIN, "run", ...TEST_ARGS, ...allow, "--events", file, ...extra, "--", "sh", "-c", script], {
        cwd: ROOT,
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
      });
    const a = run(["--keep-caps"], scriptA(link.ns4, server.port!));
    const b = run(["--user", "65534"], scriptB(link.ns4, server.port!));
    const codes = await Promise.all([a.exited, b.exited]);
    for (const [i, p] of [a, b].entries()) {
      const err = await new Response(p.stderr).text();
      if (codes[i] !== 0) throw new Error(`proxywall run (${i === 0 ? "A" : "B"}) exited ${codes[i]}: ${err}`);
    }
    return codes;
  } finally {
    server.stop(true);
    link.remove();
    up.remove();
  }
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: bun test/support/report-events.ts FILE");
  console.log(await recordTwoSandboxes(file));
}
