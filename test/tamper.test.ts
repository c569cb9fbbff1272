// A fence that notices tampering (issue #11, part 3), against the real kernel: a root CMD that
// keeps CAP_NET_ADMIN (--keep-caps) changes the fence, then connects directly. proxywall must
// see the change at the next summary, say it in a degraded line, stop calling attempts
// "reject", give null totals (never negative), and fail --fail-on-bypass with exit 5.
//
// Direct connects go to a listener in a target namespace that CMD joins by moving the sandbox's
// sink link there (the sandbox has no host side), as in sandbox.test.ts.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import * as v from "valibot";
import { EcsDocument, toEcs } from "../src/events/formats/ecs.ts";
import { OcsfEvent, toOcsf } from "../src/events/formats/ocsf.ts";
import { EventLine } from "../src/events/schema.ts";
import { inNetns } from "../src/sys/netns.ts";
import { eventsOf, type Event } from "./support/events.ts";
import { describePrivileged, hostSnapshot, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { testNetns, type TestNetns } from "./support/netns.ts";

// The legacy tools when the fence is in legacy tables (this kernel's choice), else the system's.
const TOOLS = `if grep -q . /proc/net/ip_tables_names 2>/dev/null; then IPT=iptables-legacy IP6T=ip6tables-legacy; else IPT=iptables IP6T=ip6tables; fi`;

describePrivileged("a fence changed during the run", () => {
  let target: TestNetns;
  let server: Server;
  let port = 0;

  beforeAll(async () => {
    target = testNetns("tamper");
    await inNetns(target.path, async () => {
      server = createServer((s) => s.end("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"));
      server.listen(0, "0.0.0.0");
    });
    await new Promise<void>((r) => (server.listening ? r() : server.once("listening", r)));
    port = (server.address() as { port: number }).port;
  });

  afterAll(() => {
    server?.close();
    target?.remove();
  });

  /**
   * CMD: joins the target namespace through pw1, runs `tamper`, waits for a summary to see it,
   * connects directly. curl's error stays off stderr: the event lines go there too, and a line
   * longer than a pipe's atomic write (this CMD's command line is long) can be cut by it.
   */
  async function tamperedRun(tamper: string, extra: string[] = []) {
    const script = `${TOOLS}
      ip link set pw1 netns ${target.name}
      nsenter --net=${target.path} sh -ec 'ip addr add 10.200.0.1/30 dev pw1; ip link set pw1 up'
      ${tamper}
      sleep 1.6
      curl -sS --noproxy '*' -m 3 http://10.200.0.1:${port}/ 2>/dev/null && echo CONNECTED
      true`;
    // --keep-caps: CMD keeps CAP_NET_ADMIN, so it can change the fence.
    const r = await proxywall(["run", ...TEST_ARGS, "--keep-caps", "--summary-interval", "1", ...extra, "--", "sh", "-c", script], { timeoutMs: 40_000 });
    for (const e of r.events) expect({ line: e, ok: v.safeParse(EventLine, e).success }).toEqual({ line: e, ok: true });
    // Nothing of this sandbox is left (other sandboxes may run on the machine meanwhile).
    const id = eventsOf(r.events, "sandbox_ready")[0]!.sandbox as string;
    expect(hostSnapshot().netns).not.toContain(`pw-${id}`);
    expect(eventsOf(r.events, "sandbox_closed")[0]!.cleanup).toEqual([]);
    const fence = eventsOf(r.events, "degraded").filter((d) => d.component === "fence");
    const totals = eventsOf(r.events, "bypass_totals");
    return { ...r, fence, totals, bypasses: eventsOf(r.events, "bypass_detect"), closed: eventsOf(r.events, "sandbox_closed")[0]! };
  }

  test("control: an intact fence rejects, says reject, counts, and --fail-on-bypass exits 4", async () => {
    const r = await tamperedRun("true", ["--fail-on-bypass"]);
    expect(r.stdout).not.toContain("CONNECTED");
    expect(r.fence).toEqual([]);
    expect(r.bypasses.length).toBeGreaterThan(0);
    expect(r.bypasses.every((b) => b.action === "reject")).toBe(true);
    expect(r.totals.at(-1)!.tcp).toBeGreaterThan(0);
    expect({ code: r.code, closed: r.closed.exit_code }).toEqual({ code: 4, closed: 4 });
  });

  test("mangle and OUTPUT flushed, policy ACCEPT (the issue's CMD): the connect goes through; seen, reported, totals null, exit 5", async () => {
    const r = await tamperedRun(`$IPT -t mangle -F; $IPT -F OUTPUT; $IPT -P OUTPUT ACCEPT`, ["--fail-on-bypass"]);
    expect(r.stdout).toContain("CONNECTED");
    expect(r.fence).toHaveLength(1);
    expect(r.fence[0]!.missing).toMatch(/^the fence was changed after it was installed \(first seen \d{4}-\S+Z, intact at \S+Z, checked \S+Z\): /);
    expect(r.fence[0]!.missing).toContain("ipv4 filter OUTPUT: gone or empty and accepting");
    expect(r.fence[0]!.missing).toContain("ipv4 mangle OUTPUT: gone or empty and accepting");
    expect(r.bypasses.filter((b) => b.action === "reject")).toEqual([]);
    // Seen at the first summary after the change: every later total is null, none negative.
    const after = r.totals.filter((t) => t.ts >= r.fence[0]!.ts);
    expect(after.length).toBeGreaterThan(0);
    for (const t of after) expect([t.tcp, t.udp, t.other]).toEqual([null, null, null]);
    expect({ code: r.code, closed: r.closed.exit_code, cmd: r.closed.cmd_exit_code }).toEqual({ code: 5, closed: 5, cmd: 0 });
    expect(r.text).toContain(`proxywall: error: the fence was changed during the run, first seen ${r.fence[0]!.missing.match(/first seen (\S+Z)/)![1]} (--fail-on-bypass)`);
  });

  test("an ACCEPT inserted in front of the rejects: the held SYN is reported \"unfenced\", never \"reject\"; OCSF and ECS map it", async () => {
    const r = await tamperedRun(`$IPT -I OUTPUT 1 -d 10.200.0.1 -j ACCEPT`, ["--fail-on-bypass"]);
    expect(r.stdout).toContain("CONNECTED");
    expect(r.fence).toHaveLength(1);
    expect(r.fence[0]!.missing).toContain('ipv4 filter OUTPUT: 1 rule added ("-A OUTPUT -d 10.200.0.1/32 -j ACCEPT")');
    const toTarget = r.bypasses.filter((b) => b.dst_addr === "10.200.0.1");
    expect(toTarget.length).toBeGreaterThan(0);
    expect(toTarget.map((b) => b.action)).toEqual(toTarget.map(() => "unfenced"));
    const line = toTarget[0] as Event & EventLine;
    const ocsf = toOcsf(line) as Record<string, unknown>;
    expect(v.safeParse(OcsfEvent, ocsf).success).toBe(true);
    expect({ activity: ocsf.activity_id, action: ocsf.action, disposition: ocsf.disposition }).toEqual({ activity: 1, action: "Observed", disposition: "Logged" });
    const ecs = toEcs(line);
    expect(v.safeParse(EcsDocument, ecs).success).toBe(true);
    expect({ type: ecs.event.type, outcome: ecs.event.outcome }).toEqual({ type: ["connection"], outcome: "unknown" });
    expect(r.code).toBe(5);
  });

  test("policy ACCEPT alone, and one rule deleted: each named; without --fail-on-bypass the exit code stays CMD's", async () => {
    const policy = await tamperedRun(`$IPT -P OUTPUT ACCEPT`, ["--fail-on-bypass"]);
    expect(policy.fence.map((d) => d.missing).join("\n")).toContain("ipv4 filter OUTPUT: policy ACCEPT (was DROP)");
    expect(policy.code).toBe(5);
    const deleted = await tamperedRun(`$IP6T -D OUTPUT -p udp -j REJECT --reject-with icmp6-port-unreachable`);
    expect(deleted.fence.map((d) => d.missing).join("\n")).toContain('ipv6 filter OUTPUT: 1 rule removed ("-A OUTPUT -p udp -j REJECT --reject-with icmp6-port-unreachable")');
    expect(deleted.code).toBe(0);
  });

  test("nft: the table deleted is seen the same way", async () => {
    const r = await tamperedRun(`nft delete table inet proxywall`, ["--backend", "nft", "--fail-on-bypass"]);
    expect(r.stdout).toContain("CONNECTED");
    expect(r.fence.map((d) => d.missing).join("\n")).toContain("inet proxywall output: gone");
    expect(r.code).toBe(5);
  });
});
