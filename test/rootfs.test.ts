// proxywall in the smallest image the README describes: a minimal Debian root filesystem (minbase:
// no netbase, so no /etc/protocols) with only iproute2 and nftables, or only iproute2 and
// iptables, or only iproute2, plus the compiled binary. It runs there as a container runtime
// runs an entrypoint: its own mount and PID namespaces (proxywall is PID 1), a read-only root,
// tmpfs /run and /tmp, a minimal /dev, and a network namespace of the test's own (never the
// host's). The proxied request goes to a listener in another test namespace joined by a veth pair
// and allowed with --allow; the bypasses go to 198.51.100.7, which the fence rejects.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../build.ts";
import { inNetns } from "../src/sys/netns.ts";
import { eventsOf, hostSnapshot, PRIVILEGED, describePrivileged, type Event } from "./support/privileged.ts";
import { link, testNetns, type TestNetns } from "./support/netns.ts";
import { inRootfs, minimalRootfs, MMDEBSTRAP, type InRootfs, type Rootfs } from "./support/rootfs.ts";
import { tempDir, type TempDir } from "./support/temp.ts";
import type { Run } from "./support/cli.ts";

const NFT = ["iproute2", "nftables"];
const IPTABLES = ["iproute2", "iptables"];
const BARE = ["iproute2"];

const FORWARD = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"];
const forwarding = () => FORWARD.map((f) => readFileSync(f, "utf8").trim());

/** A bash script (bash is essential in Debian, so in every image): the two bypasses and one proxied request. */
function clientScript(url: string): string {
  const host = new URL(url).host;
  return [
    // TCP: refused at once by the fence's reset.
    "(exec 3<>/dev/tcp/198.51.100.7/80) 2>/dev/null || echo tcp-refused",
    // UDP: sendto fails with EPERM; the socket stays open a moment, as a resolver's does.
    "exec 4>/dev/udp/198.51.100.7/53; { echo x >&4; } 2>/dev/null || echo udp-refused; sleep 0.3; exec 4>&-",
    // Through the door, the only way out: an absolute-URI request to the built-in proxy.
    `exec 5<>/dev/tcp/127.0.0.1/3128; printf 'GET ${url} HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n' >&5; cat <&5`,
  ].join("\n");
}

const only = (events: readonly Event[], name: string) => {
  const found = eventsOf(events, name);
  expect({ name, count: found.length }).toEqual({ name, count: 1 });
  return found[0]!;
};

function bypass(events: readonly Event[], proto: "tcp" | "udp"): Event {
  const found = eventsOf(events, "bypass_detect").filter((e) => e.proto === proto && e.dst_addr === "198.51.100.7");
  expect({ proto, count: found.length }).toEqual({ proto, count: 1 });
  return found[0]!;
}

const show = (r: Run) => `exit ${r.code}\n${r.stderr}\n${r.stdout}`;

if (!MMDEBSTRAP && PRIVILEGED && process.env.CI) {
  test("mmdebstrap is installed (required in CI: .ci/run installs it)", () => expect(MMDEBSTRAP).not.toBeNull());
}

describePrivileged(MMDEBSTRAP ? "proxywall in a minimal root filesystem, run as a container runtime would" : "minimal root filesystem (skipped: mmdebstrap is not installed)", () => {
  if (!MMDEBSTRAP) return;
  const trees: Record<"nft" | "iptables" | "bare", Rootfs> = {} as never;
  let out: TempDir;
  let bin = "";
  let web: TestNetns;
  let server: ReturnType<typeof Bun.serve> | undefined;
  let port = 0;
  let net = 0;
  const before = { forwarding: [] as string[] };
  /** Every sandbox the runs built: none may show on the host (they live in the container's mounts). */
  const seen = new Set<string>();

  beforeAll(async () => {
    before.forwarding = forwarding();
    const [nft, iptables, bare] = await Promise.all([minimalRootfs(NFT), minimalRootfs(IPTABLES), minimalRootfs(BARE)]);
    Object.assign(trees, { nft, iptables, bare });
    for (const t of [nft, iptables, bare]) if (t.built) console.error(`rootfs: built ${t.packages.join("+")} in ${(t.ms / 1000).toFixed(1)} s`);
    out = tempDir("pw-rootfs-bin-");
    bin = out.path("proxywall");
    await compile("linux-x64", bin, "0.0.0-rootfs");
    web = testNetns("rfweb");
    server = inNetns(web.path, () => Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: (req) => new Response(`origin saw ${new URL(req.url).pathname}\n`) }));
    port = server.port!;
  }, 600_000);

  afterAll(() => {
    server?.stop(true);
    web?.remove();
    out?.remove();
    // Nothing of the host changed: no forwarding switched on, none of the runs' namespaces, links or
    // state files on it (others' tests may run meanwhile, so only ours are looked for).
    expect(forwarding()).toEqual(before.forwarding);
    const host = hostSnapshot();
    const ours = (names: string[]) => names.filter((n) => [...seen].some((id) => n.includes(id)));
    expect({ netns: ours(host.netns), links: ours(host.links), state: ours(host.state) }).toEqual({ netns: [], links: [], state: [] });
    expect(seen.size).toBeGreaterThan(0);
  });

  /** A "container" network namespace; joined to the listener's namespace unless `none` (--network none). */
  function container(tag: string, none = false): { ns: TestNetns; url: string; allow: string[] } {
    const ns = testNetns(tag);
    if (none) return { ns, url: `http://10.201.53.2:${port}/hello`, allow: ["--allow", `10.201.53.2:${port}`] };
    const n = net++;
    const a = link(ns, web, `10.201.${54 + n}.0`, `fd70:7053:${n}`);
    return { ns, url: `http://${a.b4}:${port}/hello`, allow: ["--allow", `${a.b4}:${port}`] };
  }

  async function runIn(tree: keyof typeof trees, tag: string, args: string[], o: Partial<InRootfs> & { none?: boolean } = {}): Promise<{ r: Run; url: string }> {
    const c = container(tag, o.none);
    try {
      const cmd = args.map((a) => (a === "$ALLOW" ? c.allow : a === "$SCRIPT" ? [clientScript(c.url)] : [a])).flat();
      const r = await inRootfs(trees[tree].dir, bin, cmd, { ...o, netns: c.ns.path });
      for (const e of r.events) seen.add(e.sandbox);
      return { r, url: c.url };
    } finally {
      c.ns.remove();
    }
  }

  test("the trees hold only what the README lists: no /etc/protocols or /etc/services, one firewall tool each", () => {
    for (const t of Object.values(trees)) expect(existsSync(join(t.dir, "usr/sbin/ip")) || existsSync(join(t.dir, "usr/bin/ip"))).toBe(true);
    // Debian's iptables package depends on netbase; nftables and iproute2 do not.
    for (const t of [trees.nft, trees.bare]) {
      expect(existsSync(join(t.dir, "etc/protocols"))).toBe(false);
      expect(existsSync(join(t.dir, "etc/services"))).toBe(false);
    }
    const sbin = (t: Rootfs) => readdirSync(join(t.dir, "usr/sbin"));
    expect(sbin(trees.nft)).toContain("nft");
    expect(sbin(trees.nft).filter((f) => f.includes("tables"))).toEqual([]);
    expect(sbin(trees.iptables)).toContain("iptables-legacy-restore");
    expect(sbin(trees.iptables)).not.toContain("nft");
    expect(sbin(trees.bare).filter((f) => f.includes("tables") || f === "nft")).toEqual([]);
  });

  test("nft only: verified, the UDP bypass named with its process, a proxied request; the missing hold asks for iptables in the image", async () => {
    const { r } = await runIn("nft", "rfnft", ["proxywall", "run", "$ALLOW", "--", "bash", "-c", "$SCRIPT"]);
    expect(r.code, show(r)).toBe(0);
    const ready = only(r.events, "sandbox_ready");
    expect({ backend: ready.backend, detection: ready.detection, monitor: ready.monitor }).toEqual({ backend: "nft", detection: "verified", monitor: "nflog" });
    // This kernel has no nft queue: the fix is the package the image lacks, not a host module.
    const queue = eventsOf(r.events, "degraded").find((d) => d.component === "queue");
    expect(queue?.fix).toMatch(/^add the iptables package to the image/);
    expect(queue?.fix).not.toMatch(/on the host/);
    expect(r.stdout).toContain("tcp-refused");
    expect(r.stdout).toContain("udp-refused");
    bypass(r.events, "tcp");
    const udp = bypass(r.events, "udp");
    expect(udp.process).toMatchObject({ resolved: true, exe: "/usr/bin/bash" });
    expect(r.stdout).toContain("origin saw /hello");
    expect(only(r.events, "proxy_connect")).toMatchObject({ outcome: "ok", status: 200 });
    expect(only(r.events, "sandbox_closed")).toMatchObject({ cmd_exit_code: 0, cleanup: [] });
  });

  test("iptables only: verified, the TCP bypass held and named with its process, a proxied request", async () => {
    const { r } = await runIn("iptables", "rfipt", ["proxywall", "run", "$ALLOW", "--", "bash", "-c", "$SCRIPT"]);
    expect(r.code, show(r)).toBe(0);
    const ready = only(r.events, "sandbox_ready");
    expect({ backend: ready.backend, detection: ready.detection }).toEqual({ backend: "iptables", detection: "verified" });
    expect(ready.degraded).not.toContain("queue");
    const tcp = bypass(r.events, "tcp");
    expect(tcp.source).toBe("nfqueue");
    expect(tcp.process).toMatchObject({ resolved: true, exe: "/usr/bin/bash" });
    expect(bypass(r.events, "udp").process).toMatchObject({ resolved: true, exe: "/usr/bin/bash" });
    expect(r.stdout).toContain("origin saw /hello");
    expect(only(r.events, "proxy_connect")).toMatchObject({ outcome: "ok", status: 200 });
  });

  test("--network none: the sandbox works (verified, bypasses reported), the proxy's upstream has nowhere to go (502)", async () => {
    const { r } = await runIn("nft", "rfnone", ["proxywall", "run", "$ALLOW", "--", "bash", "-c", "$SCRIPT"], { none: true });
    expect(r.code, show(r)).toBe(0);
    expect(only(r.events, "sandbox_ready").detection).toBe("verified");
    bypass(r.events, "tcp");
    bypass(r.events, "udp");
    expect(r.stdout).toMatch(/^HTTP\/1\.[01] 502 /m);
    expect(only(r.events, "proxy_connect")).toMatchObject({ outcome: "connect_failed", status: 502 });
  });

  test("no firewall tool in the image: run exits 3 naming the packages; doctor says the same, not a host module", async () => {
    const { r } = await runIn("bare", "rfbare", ["proxywall", "run", "--", "true"]);
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(/no firewall tool can install the fence: .*nft: nft not found .*install the nftables package/);
    // One line says why (the init, started early, is ended quietly).
    expect(r.stderr.split("\n").filter((l) => l.startsWith("proxywall:"))).toHaveLength(1);
    const d = await runIn("bare", "rfbaredoc", ["proxywall", "doctor", "--json"]);
    expect(d.r.code, show(d.r)).toBe(1);
    const checks = new Map((JSON.parse(d.r.stdout).checks as { name: string; status: string; fix: string | null; detail: string }[]).map((c) => [c.name, c]));
    expect(checks.get("fence")!.status).toBe("missing");
    expect(checks.get("fence")!.fix).toMatch(/^install the nftables package in the image/);
    expect(checks.get("nfqueue")!.detail).toMatch(/^not checked: needs /);
    expect(checks.get("nfqueue")!.fix).toBeNull();
  });

  test("doctor in the nft-only image: yes, and the hold's fix is iptables in the image", async () => {
    const { r } = await runIn("nft", "rfdoc", ["proxywall", "doctor", "--json"]);
    expect(r.code, show(r)).toBe(0);
    const checks = new Map((JSON.parse(r.stdout).checks as { name: string; status: string; fix: string | null }[]).map((c) => [c.name, c]));
    for (const name of ["ip", "nft", "state-dir", "netns", "veth", "fence", "nflog", "cleanup"]) expect(`${name}: ${checks.get(name)?.status}`).toBe(`${name}: ok`);
    expect(checks.get("nfqueue")).toMatchObject({ status: "missing", fix: expect.stringMatching(/^add the iptables package to the image/) });
  });

  describe("a non-root image user, and a read-only /run", () => {
    test("non-root with CAP_NET_ADMIN and CAP_SYS_ADMIN, /run owned by root: exit 3 saying a writable directory is needed; doctor names /run", async () => {
      const { r } = await runIn("nft", "rfuser", ["proxywall", "run", "--", "true"], { user: 65534 });
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toContain("cannot write the state directory /run/proxywall: EACCES: a writable directory is needed (pass --state-dir DIR)");
      const moved = await runIn("nft", "rfuser2", ["proxywall", "run", "--state-dir", "/tmp/pw", "--", "true"], { user: 65534 });
      expect(moved.r.code, show(moved.r)).toBe(3);
      expect(moved.r.stderr).toMatch(/\/run\/netns/);
      const d = await runIn("nft", "rfuserdoc", ["proxywall", "doctor", "--json"], { user: 65534 });
      const checks = new Map((JSON.parse(d.r.stdout).checks as { name: string; status: string; fix: string | null; detail: string }[]).map((c) => [c.name, c]));
      expect(checks.get("cap-net-admin")!.status).toBe("ok");
      expect(checks.get("state-dir")).toMatchObject({ status: "missing", fix: expect.stringContaining("a writable /run for uid 65534") });
      expect(checks.get("netns")).toMatchObject({ status: "missing", fix: expect.stringMatching(/^a writable \/run\/netns/) });
      // The monitor's NFLOG check never ran: no fix for it.
      expect(checks.get("monitor")!.fix).toBeNull();
      expect(d.r.code).toBe(1);
    });

    test("non-root with ambient CAP_NET_ADMIN, CAP_SYS_ADMIN (and CAP_SETPCAP, CAP_DAC_OVERRIDE) and a /run it owns: the sandbox works", async () => {
      const caps = "+net_admin,+sys_admin,+setpcap,+dac_override";
      const { r } = await runIn("iptables", "rfowner", ["proxywall", "run", "$ALLOW", "--", "bash", "-c", "$SCRIPT"], { user: 65534, caps, run: "uid=65534,gid=65534,mode=755" });
      expect(r.code, show(r)).toBe(0);
      expect(only(r.events, "sandbox_ready")).toMatchObject({ backend: "iptables", detection: "verified" });
      expect(bypass(r.events, "tcp").process).toMatchObject({ resolved: true, exe: "/usr/bin/bash", uid: 65534 });
      expect(r.stdout).toContain("origin saw /hello");
    });

    test("root with a read-only /run: exit 3 saying a writable directory is needed (EROFS); doctor says so", async () => {
      const { r } = await runIn("nft", "rfro", ["proxywall", "run", "--", "true"], { run: "ro,mode=755" });
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toContain("EROFS: a writable directory is needed (pass --state-dir DIR)");
      const d = await runIn("nft", "rfrodoc", ["proxywall", "doctor", "--json"], { run: "ro,mode=755" });
      const checks = new Map((JSON.parse(d.r.stdout).checks as { name: string; status: string; detail: string }[]).map((c) => [c.name, c]));
      expect(checks.get("state-dir")).toMatchObject({ status: "missing", detail: expect.stringContaining("read-only file system") });
      expect(d.r.code).toBe(1);
    });
  });
});
