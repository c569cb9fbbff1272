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
  sh("ip link set lo up");
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
