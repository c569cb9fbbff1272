// The same minimal images under a real container runtime: podman runs the cached root filesystem
// (--rootfs, with an overlay so the cache is never written) with the compiled binary mounted in,
// --network none (a runtime's default bridge network turns on the host's IP forwarding and adds
// host firewall chains: never here), and the host's forwarding and firewall must be as they were.
// Skipped, saying why, where podman is not installed or cannot start a container on this machine.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { compile } from "../build.ts";
import { describePrivileged, eventsOf, splitStderr, type Event } from "./support/privileged.ts";
import { minimalRootfs, MMDEBSTRAP, type Rootfs } from "./support/rootfs.ts";
import { tempDir, type TempDir } from "./support/temp.ts";

const PODMAN = ["/usr/bin/podman", "/usr/local/bin/podman"].find((p) => existsSync(p)) ?? null;
// crun refuses hybrid cgroup hosts (v1 controllers plus a v2 mount, as here); runc does not.
const RUNC = ["/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc"].find((p) => existsSync(p)) ?? null;
const FORWARD = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"];
const forwarding = () => FORWARD.map((f) => readFileSync(f, "utf8").trim());
/** What a runtime's network setup would add to the host: chains and tables of its own. */
const runtimeRules = () => {
  const out = (cmd: string[]) => Bun.spawnSync(cmd).stdout.toString();
  return (out(["iptables-save"]) + out(["nft", "list", "tables"])).split("\n").filter((l) => /NETAVARK|CNI-|PODMAN|netavark|podman/i.test(l));
};

function podman(args: string[], timeoutMs = 60_000) {
  const base = [PODMAN!, ...(RUNC ? ["--runtime", RUNC] : []), "--cgroup-manager=cgroupfs", "--events-backend=file"];
  const p = Bun.spawnSync([...base, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  const stderr = p.stderr.toString();
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr, ...splitStderr(stderr) };
}

/** `podman run` of a minimal tree, as the README's container section says (ulimits explicit: the runtime's defaults exceed this host's). */
function runArgs(tree: Rootfs, bin: string, cmd: string[]): string[] {
  return ["run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN", "--read-only", "--tmpfs", "/run", "--tmpfs", "/tmp", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--pids-limit", "0", "-v", `${bin}:/usr/local/bin/proxywall:ro`, "--rootfs", `${tree.dir}:O`, ...cmd];
}

const SCRIPT = [
  "(exec 3<>/dev/tcp/198.51.100.7/80) 2>/dev/null || echo tcp-refused",
  "exec 4>/dev/udp/198.51.100.7/53; { echo x >&4; } 2>/dev/null || echo udp-refused; sleep 0.3; exec 4>&-",
  // --network none: the proxy's upstream has nowhere to go.
  "exec 5<>/dev/tcp/127.0.0.1/3128; printf 'GET http://10.201.60.2:8080/ HTTP/1.1\\r\\nHost: 10.201.60.2:8080\\r\\nConnection: close\\r\\n\\r\\n' >&5; cat <&5",
].join("\n");

describePrivileged("proxywall under podman (--network none)", () => {
  let out: TempDir | undefined;
  let bin = "";
  let trees: Rootfs[] = [];
  let why: string | null = null;
  const before = { forwarding: forwarding(), rules: runtimeRules() };

  beforeAll(async () => {
    if (!PODMAN) return void (why = "podman is not installed");
    if (!MMDEBSTRAP) return void (why = "mmdebstrap is not installed");
    trees = await Promise.all([minimalRootfs(["iproute2", "nftables"]), minimalRootfs(["iproute2", "iptables"])]);
    out = tempDir("pw-podman-bin-");
    bin = out.path("proxywall");
    await compile("linux-x64", bin, "0.0.0-podman");
    const probe = podman(runArgs(trees[0]!, bin, ["proxywall", "--version"]));
    if (probe.code !== 0) why = `podman cannot start a container here: ${probe.stderr.trim().split("\n").at(-1)}`;
  }, 600_000);

  afterAll(() => {
    out?.remove();
    expect(forwarding()).toEqual(before.forwarding);
    expect(runtimeRules()).toEqual(before.rules);
  });

  for (const [i, name] of [[0, "nft only"], [1, "iptables only"]] as const) {
    test(`${name}: verified, bypasses reported with their process, the proxy answers 502 with no network`, () => {
      if (why !== null) {
        console.error(`skipped: ${why}`);
        return;
      }
      const r = podman(runArgs(trees[i]!, bin, ["proxywall", "run", "--allow", "10.201.60.2:8080", "--", "bash", "-c", SCRIPT]));
      expect(r.code, r.stderr).toBe(0);
      const ready = eventsOf(r.events, "sandbox_ready")[0]!;
      expect({ backend: ready.backend, detection: ready.detection }).toEqual({ backend: i === 0 ? "nft" : "iptables", detection: "verified" });
      const found = (proto: string) => eventsOf(r.events, "bypass_detect").find((e: Event) => e.proto === proto && e.dst_addr === "198.51.100.7");
      expect(found("udp")?.process).toMatchObject({ resolved: true, exe: "/usr/bin/bash" });
      if (i === 1) expect(found("tcp")?.process).toMatchObject({ resolved: true, exe: "/usr/bin/bash" });
      else expect(found("tcp")).toBeDefined();
      expect(r.stdout).toMatch(/^HTTP\/1\.[01] 502 /m);
      expect(eventsOf(r.events, "proxy_connect")[0]).toMatchObject({ outcome: "connect_failed" });
    });
  }
});
