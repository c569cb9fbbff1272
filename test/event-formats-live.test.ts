// --event-format ocsf|ecs on real lines (needs root): `run` with a client that goes around the
// proxy (TCP), a DNS lookup that does (UDP 53, with the name), and a request through the proxy;
// `monitor` watching a namespace of the test's own. Every line each writes is a valid OCSF 1.8.0
// event or ECS document (test/support/ocsf.ts, ecs.ts), and the kinds expected are there.
// `parse` with each format is in test/event-formats.test.ts (no root needed).
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ecsIssues } from "./support/ecs.ts";
import { link, testNetns } from "./support/netns.ts";
import { ocsfIssues } from "./support/ocsf.ts";
import { describePrivileged, MAIN, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { background } from "./support/process.ts";
import { tempDir } from "./support/temp.ts";
import { waitFor } from "./support/wait.ts";

const DNS_NAME = "formats-check.proxywall.test";
/** A DNS query for argv[1] to argv[2]:53 over UDP; the socket stays open a while, so its owner is found. */
const DNS_PY = `
import socket, struct, sys, time
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split(".")) + b"\\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(q, (sys.argv[2], 53))
except OSError:
    pass
time.sleep(0.5)
`;

type Format = "ocsf" | "ecs";
const validate = (format: Format, line: unknown) => (format === "ocsf" ? ocsfIssues(line) : ecsIssues(line));

/** The JSON objects among `text`'s lines (CMD's own stderr and proxywall's diagnostics are not). */
function jsonLines(text: string): Record<string, any>[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** proxywall's event name a mapped line came from. */
function kindOf(format: Format, l: Record<string, any>): string {
  if (format === "ecs") return l.event.action;
  if (l.class_uid === 6002) return { 3: "sandbox_ready", 4: "sandbox_closed", 99: "degraded" }[l.activity_id as 3 | 4 | 99];
  if (l.class_uid === 4003 || l.firewall_rule?.name === "reject-direct" || l.firewall_rule?.name === "log-direct") return "bypass_detect";
  if (l.unmapped?.method) return "proxy_connect";
  if (l.unmapped?.tcp !== undefined) return "bypass_totals";
  return "bypass_summary";
}

describePrivileged("--event-format on real lines", () => {
  for (const format of ["ocsf", "ecs"] as const) {
    test(`run --event-format ${format}: a TCP bypass, a DNS lookup, a request through the proxy; every line validates`, async () => {
      using dir = tempDir("proxywall-formats-live-");
      const events = dir.path("events.jsonl");
      const script = `
        curl -sS --noproxy '*' -m 5 http://198.51.100.7/ 2>/dev/null
        python3 -c '${DNS_PY}' ${DNS_NAME} 198.51.100.53
        curl -sS -m 5 --proxy "$HTTP_PROXY" --noproxy '' http://127.0.0.1:1/ >/dev/null 2>&1
        exit 0`;
      // One format to stderr, the other to an --events file: both ways out.
      const args = format === "ecs" ? ["--events", events] : [];
      const r = await proxywall(["run", ...TEST_ARGS, "--event-format", format, ...args, "--summary-interval", "0", "--", "bash", "-c", script], { timeoutMs: 45_000 });
      expect(r.code).toBe(0);
      const lines = jsonLines(format === "ecs" ? readFileSync(events, "utf8") : r.stderr);
      expect(r.events).toEqual([]); // nothing in proxywall's own format
      for (const l of lines) expect({ kind: kindOf(format, l), issues: validate(format, l) }).toEqual({ kind: kindOf(format, l), issues: [] });
      const kinds = new Set(lines.map((l) => kindOf(format, l)));
      for (const k of ["sandbox_ready", "bypass_detect", "proxy_connect", "bypass_summary", "bypass_totals", "sandbox_closed"]) expect({ k, seen: kinds.has(k) }).toEqual({ k, seen: true });
      const detects = lines.filter((l) => kindOf(format, l) === "bypass_detect");
      if (format === "ocsf") {
        const tcp = detects.find((l) => l.class_uid === 4001 && l.dst_endpoint.ip === "198.51.100.7");
        expect(tcp).toMatchObject({ activity_id: 5, type_uid: 400105, actor: { process: { name: "curl" } }, connection_info: { protocol_name: "tcp" } });
        const dns = detects.find((l) => l.class_uid === 4003);
        expect(dns).toMatchObject({ activity_id: 1, type_uid: 400301, query: { hostname: DNS_NAME }, dst_endpoint: { ip: "198.51.100.53", port: 53 } });
      } else {
        const tcp = detects.find((l) => l.destination.ip === "198.51.100.7");
        expect(tcp).toMatchObject({ event: { kind: "alert", type: ["connection", "denied"] }, process: { name: "curl" }, network: { transport: "tcp" } });
        const dns = detects.find((l) => l.dns);
        expect(dns).toMatchObject({ dns: { question: { name: DNS_NAME } }, destination: { ip: "198.51.100.53", port: 53 }, network: { transport: "udp", protocol: "dns" } });
      }
    });
  }

  for (const format of ["ocsf", "ecs"] as const) {
    test(`monitor --event-format ${format}: observed TCP and DNS lines, every line validates`, async () => {
      using watched = testNetns(`fmt${format}a`);
      using dead = testNetns(`fmt${format}b`); // does not forward: the packets end there
      const l = link(watched, dead, "10.209.79.0", "fd00:2099:1");
      watched.sh(`ip route add default via ${l.b4}`);
      const mon = background([process.execPath, MAIN, "monitor", "--netns", watched.name, "--event-format", format, "--summary-interval", "0"]);
      try {
        await waitFor("monitor to say it is watching", () => mon.out.stderr.includes("watching"), 10_000, 20);
        const curl = Bun.spawn([...watched.prefix, "curl", "-sS", "-m", "1", "http://198.51.100.7:443/"], { stdout: "ignore", stderr: "ignore" });
        const dns = Bun.spawn([...watched.prefix, "python3", "-c", DNS_PY, DNS_NAME, "198.51.100.53"], { stdout: "ignore", stderr: "ignore" });
        await Promise.all([curl.exited, dns.exited]);
        const observed = () => jsonLines(mon.out.stdout).filter((x) => kindOf(format, x) === "bypass_detect");
        await waitFor("a TCP and a DNS line from the monitor", () => observed().some((x) => JSON.stringify(x).includes(DNS_NAME)) && observed().some((x) => JSON.stringify(x).includes('"198.51.100.7"')), 10_000, 20);
        mon.p.kill("SIGINT");
        expect(await mon.finish()).toBe(0);
        const lines = jsonLines(mon.out.stdout);
        expect(lines.length).toBeGreaterThanOrEqual(3);
        for (const x of lines) expect({ kind: kindOf(format, x), issues: validate(format, x) }).toEqual({ kind: kindOf(format, x), issues: [] });
        const detects = lines.filter((x) => kindOf(format, x) === "bypass_detect");
        if (format === "ocsf") {
          expect(detects.every((x) => x.action_id === 3 && x.disposition_id === 17 && x.metadata.correlation_uid === watched.name)).toBe(true);
          expect(detects.find((x) => x.class_uid === 4003)).toMatchObject({ query: { hostname: DNS_NAME } });
        } else {
          expect(detects.every((x) => x.event.type.join() === "connection" && x.rule.name === "log-direct" && x.labels.sandbox === watched.name)).toBe(true);
          expect(detects.find((x) => x.dns)).toMatchObject({ dns: { question: { name: DNS_NAME } } });
        }
      } finally {
        if (mon.p.exitCode === null) {
          mon.p.kill("SIGKILL");
          await mon.finish();
        }
      }
    });
  }
});
