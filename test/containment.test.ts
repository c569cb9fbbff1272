// CMD cannot touch the wall, and nothing it starts outlives it (issue #11 parts 1, 2, 5): against
// the real kernel, with real clients, as root CMD, --user 0, and a non-root CMD that inherited
// ambient capabilities; --keep-caps as the control that shows each probe can succeed.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync, existsSync } from "node:fs";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { describePrivileged, eventsOf, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { testNetns, type TestNetns } from "./support/netns.ts";
import { tempDir, type TempDir } from "./support/temp.ts";

const PY = "/usr/bin/python3";
const which = (tool: string) => Bun.spawnSync(["sh", "-c", `command -v ${tool} || ls /usr/sbin/${tool} /sbin/${tool} 2>/dev/null`]).stdout.toString().trim().split("\n")[0]!;

/** One line `NAME RC` per attempt at the wall; the rc of the command that tried. */
function wallProbes(hostNs: string): string {
  const nft = which("nft");
  const ipt = which("iptables-legacy") || which("iptables");
  return `
    probe() { n=$1; shift; "$@" >/dev/null 2>&1; echo "$n $?"; }
    probe nft-flush ${nft} flush ruleset
    probe nft-add ${nft} add table inet pwtest
    probe ipt-flush ${ipt} -w -F OUTPUT
    probe raw-socket ${PY} -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)'
    probe unshare-net unshare -n true
    probe nsenter-host nsenter --net=${hostNs} true
    probe vsock ${PY} -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)'
    grep -E '^Cap(Bnd|Amb|Eff|Prm):' /proc/self/status | tr -d '\\t' | tr ':' ' '
  `;
}

function parseProbes(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split("\n").map((l) => l.trim().split(/\s+/) as [string, string]));
}

/** Bits the issue names: NET_ADMIN 12, NET_RAW 13, SYS_MODULE 16, SYS_RAWIO 17, SYS_PTRACE 19, SYS_ADMIN 21, PERFMON 38, BPF 39. */
const WALL_BITS = [12, 13, 16, 17, 19, 21, 38, 39].reduce((m, b) => m | (1n << BigInt(b)), 0n);
const hasWallBits = (hex: string | undefined) => (BigInt(`0x${hex ?? "0"}`) & WALL_BITS) !== 0n;

const AMBIENT = "+net_admin,+sys_admin,+dac_override,+setpcap,+sys_ptrace,+net_raw,+setuid,+setgid,+kill";

describePrivileged("CMD cannot touch the wall (capabilities, socket families)", () => {
  let host: TestNetns;
  let state: TempDir;
  beforeAll(() => {
    host = testNetns("wall");
    // A state dir the non-root proxywall (ambient capabilities) can write.
    state = tempDir("pw-contain-state-");
    chownSync(state.root, 65534, 65534);
  });
  afterAll(async () => {
    await proxywall(["gc", "--state-dir", state.root]);
    host.remove();
    state.remove();
  });

  const cases: { name: string; args: string[]; prefix?: string[]; state?: boolean }[] = [
    { name: "root CMD (the default)", args: [] },
    { name: "--user 0", args: ["--user", "0"] },
    { name: "a non-root CMD that inherited ambient NET_ADMIN", args: [], prefix: ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", AMBIENT, "--ambient-caps", AMBIENT], state: true },
  ];
  for (const c of cases) {
    test(`${c.name}: no rules flushed or added, no raw socket, no unshare -n, no nsenter, no vsock; CapBnd/CapAmb clear; --keep-caps can`, async () => {
      const args = ["run", ...(c.state ? ["--state-dir", state.root] : TEST_ARGS), ...c.args];
      const dropped = await proxywall([...args, "--", "bash", "-c", wallProbes(host.path)], { prefix: c.prefix });
      expect(dropped.code).toBe(0);
      const p = parseProbes(dropped.stdout);
      for (const probe of ["nft-flush", "nft-add", "ipt-flush", "raw-socket", "unshare-net", "nsenter-host", "vsock"]) expect({ probe, rc: p[probe] }).not.toEqual({ probe, rc: "0" });
      expect({ CapBnd: hasWallBits(p.CapBnd), CapAmb: hasWallBits(p.CapAmb), CapEff: hasWallBits(p.CapEff), CapPrm: hasWallBits(p.CapPrm) }).toEqual({ CapBnd: false, CapAmb: false, CapEff: false, CapPrm: false });
      expect(eventsOf(dropped.events, "degraded").map((e) => e.component)).not.toContain("privileges");

      // The control: the same CMD with --keep-caps flushes (and is told so in a degraded line).
      const kept = await proxywall([...args, "--keep-caps", "--", "bash", "-c", wallProbes(host.path)], { prefix: c.prefix });
      expect(kept.code).toBe(0);
      const k = parseProbes(kept.stdout);
      expect({ flush: k["nft-flush"], raw: k["raw-socket"] }).toEqual({ flush: "0", raw: "0" });
      expect(hasWallBits(c.prefix ? k.CapAmb : k.CapBnd)).toBe(true);
      const privileges = eventsOf(kept.events, "degraded").find((e) => e.component === "privileges");
      expect(privileges?.missing).toContain("CAP_NET_ADMIN");
      for (const e of [...dropped.events, ...kept.events]) v.parse(EventLine, e);
      // Both sandboxes are gone (others' may come and go meanwhile: only these two are checked).
      const made = [...dropped.events, ...kept.events].filter((e) => e.event === "sandbox_ready").map((e) => e.netns as string);
      expect(made).toHaveLength(2);
      expect(made.filter((n) => existsSync(`/run/netns/${n}`))).toEqual([]);
    });
  }

  test("a root CMD still writes files and binds a port below 1024", async () => {
    using dir = tempDir("pw-contain-root-");
    const r = await proxywall(["run", ...TEST_ARGS, "--user", "0", "--", PY, "-c", `import socket; open("${dir.path("f")}", "w").write("x"); s = socket.socket(); s.bind(("127.0.0.1", 81)); print("ok")`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ok\n");
    expect(await Bun.file(dir.path("f")).text()).toBe("x");
  });

  test("socket families: vsock and packet refused with EAFNOSUPPORT; --allow-socket-family vsock lets vsock through; unix, inet, inet6, netlink work", async () => {
    const script = `import socket, errno
for name, fam, typ in [("unix", socket.AF_UNIX, socket.SOCK_STREAM), ("inet", socket.AF_INET, socket.SOCK_STREAM), ("inet6", socket.AF_INET6, socket.SOCK_DGRAM), ("netlink", socket.AF_NETLINK, socket.SOCK_RAW), ("vsock", socket.AF_VSOCK, socket.SOCK_STREAM), ("packet", socket.AF_PACKET, socket.SOCK_DGRAM)]:
    try:
        socket.socket(fam, typ).close(); print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
try:
    socket.socketpair(socket.AF_VSOCK); print("vsock-pair ok")
except OSError as e:
    print("vsock-pair", errno.errorcode[e.errno])`;
    const r = await proxywall(["run", ...TEST_ARGS, "--", PY, "-c", script]);
    expect(r.code).toBe(0);
    expect(parseProbes(r.stdout)).toEqual({ unix: "ok", inet: "ok", inet6: "ok", netlink: "ok", vsock: "EAFNOSUPPORT", packet: "EAFNOSUPPORT", "vsock-pair": "EAFNOSUPPORT" });
    // The same program outside the sandbox makes a vsock socket (the refusal above is the filter's).
    const outside = Bun.spawnSync([PY, "-c", "import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); print('ok')"]);
    if (outside.exitCode === 0) {
      const allowed = await proxywall(["run", ...TEST_ARGS, "--allow-socket-family", "vsock", "--", PY, "-c", script]);
      expect(parseProbes(allowed.stdout).vsock).toBe("ok");
    }
    const bad = await proxywall(["run", ...TEST_ARGS, "--allow-socket-family", "carrier-pigeon", "--", "true"]);
    expect(bad.code).toBe(2);
  });
});

describePrivileged("nothing CMD starts outlives it (PID namespace)", () => {
  const marker = () => `${Date.now() % 100000}${Math.floor(Math.random() * 1000)}`;
  const alive = (m: string) => Bun.spawnSync(["pgrep", "-f", m]).exitCode === 0;
  const killAll = (m: string) => Bun.spawnSync(["pkill", "-9", "-f", m]);

  test("a fork-hopper, a double fork with setsid and unshare -Urn sleep: none left after run returns, 10 of 10", async () => {
    const hopper = "import os, sys, time\nwhile True:\n    if os.fork(): os._exit(0)\n    time.sleep(0.005)";
    for (let i = 0; i < 10; i++) {
      const m = marker();
      try {
        const script = `${PY} -c '${hopper}' hop-${m} &
          setsid -f sh -c 'sleep 297.${m}' &
          unshare -Urn sleep 298.${m} &
          sleep 0.3; exit 0`;
        const r = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", script]);
        expect(r.code).toBe(0);
        expect({ try: i, left: alive(m) }).toEqual({ try: i, left: false });
      } finally {
        killAll(m);
      }
    }
  });

  test("CMD sees only its own processes; events carry the pid CMD's processes see (ns_pid)", async () => {
    // A host process of root's: its pid is not a process CMD can name, so pidfd_open (and with it
    // pidfd_getfd) fails from inside; the same call outside succeeds, so the probe can succeed.
    const m = marker();
    const hostProc = Bun.spawn(["sleep", `296.${m}`]);
    try {
      const getfd = `import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(434, int(sys.argv[1]), 0)
if fd < 0: print("pidfd_open", ctypes.get_errno()); sys.exit(1)
r = libc.syscall(438, fd, 0, 0)
print("pidfd_getfd", r, ctypes.get_errno()); sys.exit(0 if r >= 0 else 1)`;
      expect(Bun.spawnSync([PY, "-c", getfd, String(hostProc.pid)]).exitCode).toBe(0);
      const script = `${PY} -c '${getfd}' ${hostProc.pid}; echo "getfd=$?"; echo "self=$$"; ls /proc | grep -cE '^[0-9]+$'; curl -sS --noproxy '*' -m 5 http://198.51.100.7/ >/dev/null 2>&1; true`;
      const r = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", script]);
      expect(r.code).toBe(0);
      const out = r.stdout.trim().split("\n");
      expect(out).toContain("getfd=1");
      const self = Number(out.find((l) => l.startsWith("self="))!.slice(5));
      // init, sh, ls, grep (and python's exit race): a handful, never the host's hundreds.
      expect(Number(out.at(-1))).toBeLessThan(10);
      const bypass = eventsOf(r.events, "bypass_detect").find((e) => e.process?.resolved && e.process.exe?.endsWith("curl"));
      expect(bypass).toBeDefined();
      expect(bypass!.process.ns_pid).toBeGreaterThan(self);
      expect(bypass!.process.ns_pid).not.toBe(bypass!.process.pid);
      expect(bypass!.process.ancestors.map((a: { pid: number }) => a.pid)).not.toContain(undefined);
    } finally {
      hostProc.kill("SIGKILL");
    }
  });
});
