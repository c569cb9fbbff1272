// Real event lines for the report tests: two sandboxes run at once by `proxywall run`, appending to
// one --events file, so their lines are mixed. Sandbox A (CMD as root: a degraded part) makes a TCP
// and a UDP bypass, a proxied request and a tunnel to a listener this process starts on loopback,
// and a request the proxy cannot carry out; sandbox B (--user 65534) tries DNS over UDP with a real
// query, a direct TCP connection, and one proxied request. Only loopback and 198.51.100.7 (which
// the sandbox rejects before a packet leaves) are ever addressed.
//
// `bun test/support/report-events.ts FILE` writes such a file (how test/fixtures/events-two-sandboxes.jsonl was made).
import { MAIN, ROOT, TEST_ARGS } from "./privileged.ts";

const PY = "/usr/bin/python3";
const UDP_DNS =
  "import socket; q=bytes.fromhex('123401000001000000000000076578616d706c6503636f6d0000010001'); " +
  "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry: s.sendto(q, ('198.51.100.7', 53))\nexcept OSError: pass";
const UDP = "import socket\ntry: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.51.100.7', 123))\nexcept OSError: pass";

function scriptA(port: number): string {
  return [
    `curl -sS --noproxy '*' -m 5 http://198.51.100.7/ 2>/dev/null`,
    `${PY} -c "${UDP}"`,
    `curl -sS --noproxy '' -o /dev/null http://127.0.0.1:${port}/hello`,
    `curl -sS --noproxy '' -o /dev/null -p http://127.0.0.1:${port}/tunnel`,
    `curl -sS --noproxy '' -o /dev/null http://127.0.0.1:1/ 2>/dev/null`,
    `sh -c "curl -sS --noproxy '*' -m 5 https://198.51.100.7:8443/ 2>/dev/null"`,
    "true",
  ].join("; ");
}

function scriptB(port: number): string {
  return [
    `${PY} -c "${UDP_DNS}"`,
    `curl -sS --noproxy '*' -m 5 http://198.51.100.7:8080/ 2>/dev/null`,
    `curl -sS --noproxy '' -o /dev/null http://127.0.0.1:${port}/from-b`,
    "true",
  ].join("; ");
}

/** Runs both sandboxes at once, appending their event lines to `file`; their exit codes. */
export async function recordTwoSandboxes(file: string): Promise<number[]> {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`hello from ${new URL(req.url).pathname}\n`) });
  try {
    const run = (extra: string[], script: string) =>
      Bun.spawn([process.execPath, MAIN, "run", ...TEST_ARGS, "--events", file, ...extra, "--", "sh", "-c", script], {
        cwd: ROOT,
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
      });
    const a = run([], scriptA(server.port!));
    const b = run(["--user", "65534"], scriptB(server.port!));
    const codes = await Promise.all([a.exited, b.exited]);
    for (const [i, p] of [a, b].entries()) {
      const err = await new Response(p.stderr).text();
      if (codes[i] !== 0) throw new Error(`proxywall run (${i === 0 ? "A" : "B"}) exited ${codes[i]}: ${err}`);
    }
    return codes;
  } finally {
    server.stop(true);
  }
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: bun test/support/report-events.ts FILE");
  console.log(await recordTwoSandboxes(file));
}
