// Test hosts of a test's own: network namespaces made with `ip netns add`, removed with what runs
// in them. Tests put proxywall, upstream servers and neighbours in these, never on a real network.

export interface TestNetns {
  name: string;
  path: string;
  /** Runs a command inside (nsenter, so /sys is not remounted); throws with its stderr on failure. */
  sh(script: string): string;
  /** The same command, for a prefix to Bun.spawn: `[...ns.prefix, cmd, ...args]`. */
  prefix: string[];
  remove(): void;
  [Symbol.dispose](): void;
}

/** A fresh namespace `pwt-TAG-PID` with loopback up; `using ns = testNetns("x")` removes it after. */
export function testNetns(tag: string): TestNetns {
  const name = `pwt-${tag}-${process.pid}`;
  Bun.spawnSync(["ip", "netns", "del", name]);
  const add = Bun.spawnSync(["ip", "netns", "add", name]);
  if (add.exitCode !== 0) throw new Error(`ip netns add ${name}: ${add.stderr.toString()}`);
  const path = `/run/netns/${name}`;
  const prefix = ["nsenter", `--net=${path}`];
  const sh = (script: string) => {
    const p = Bun.spawnSync([...prefix, "sh", "-ec", script]);
    if (p.exitCode !== 0) throw new Error(`in ${name}: ${script}: ${p.stderr.toString().trim()}`);
    return p.stdout.toString();
  };
  // No duplicate address detection: addresses are usable at once and do not change state mid-test.
  sh("ip link set lo up; sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
  const remove = () => {
    // Whatever still runs inside would keep the namespace alive after its name is gone.
    Bun.spawnSync(["sh", "-c", `ip netns pids ${name} | xargs -r kill -9`]);
    Bun.spawnSync(["ip", "netns", "del", name]);
  };
  return { name, path, sh, prefix, remove, [Symbol.dispose]: remove };
}

/** Joins two test namespaces with a veth pair and the given /30 (a.1 in `a`, a.2 in `b`) and /64. */
let links = 0;

export function link(a: TestNetns, b: TestNetns, v4net: string, v6net: string): { a4: string; b4: string; a6: string; b6: string } {
  const n = links++;
  const ifA = `v${process.pid % 100000}-${n}a`;
  const ifB = `v${process.pid % 100000}-${n}b`;
  const base = v4net.replace(/\.0$/, "");
  const r = { a4: `${base}.1`, b4: `${base}.2`, a6: `${v6net}::1`, b6: `${v6net}::2` };
  a.sh(`ip link add ${ifA} type veth peer name ${ifB} netns ${b.name}
    ip addr add ${r.a4}/30 dev ${ifA}; ip addr add ${r.a6}/64 dev ${ifA} nodad; ip link set ${ifA} up`);
  b.sh(`ip addr add ${r.b4}/30 dev ${ifB}; ip addr add ${r.b6}/64 dev ${ifB} nodad; ip link set ${ifB} up`);
  return r;
}

/** Joins proxywall's own namespace (where the tests run) to a test namespace: host a.1, `ns` a.2. */
export function linkToHost(ns: TestNetns, v4net: string, v6net: string): { host4: string; ns4: string; host6: string; ns6: string; remove(): void } {
  const n = links++;
  const ifH = `h${process.pid % 100000}-${n}`;
  const ifN = `n${process.pid % 100000}-${n}`;
  const base = v4net.replace(/\.0$/, "");
  const r = { host4: `${base}.1`, ns4: `${base}.2`, host6: `${v6net}::1`, ns6: `${v6net}::2` };
  const run = (cmd: string) => {
    const p = Bun.spawnSync(["sh", "-ec", cmd]);
    if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString().trim()}`);
  };
  run(`ip link add ${ifH} type veth peer name ${ifN} netns ${ns.name}
    ip addr add ${r.host4}/30 dev ${ifH}; ip addr add ${r.host6}/64 dev ${ifH} nodad; ip link set ${ifH} up`);
  ns.sh(`ip addr add ${r.ns4}/30 dev ${ifN}; ip addr add ${r.ns6}/64 dev ${ifN} nodad; ip link set ${ifN} up`);
  return { ...r, remove: () => void Bun.spawnSync(["ip", "link", "del", ifH]) };
}
