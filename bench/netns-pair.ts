// Two network namespaces of a benchmark's own, joined by a veth pair on a /30: the one place the
// benchmarks that send traffic (bench/own-netns.ts, bench/policy-proxy.ts) make and remove them,
// so no request they send leaves namespaces they made and the machine's network is not touched.
import { existsSync } from "node:fs";
import { requireTool } from "./support.ts";

function ip(args: string[]): void {
  const p = Bun.spawnSync([requireTool("ip", true), ...args], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  if (p.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: exit ${p.exitCode}: ${p.stderr.toString().trim()}`);
}

/** The argv prefix that runs a command in namespace `ns` (nsenter execs it: the same pid). */
export function enterNetns(ns: string): string[] {
  return [requireTool("nsenter", true), `--net=/run/netns/${ns}`, "--"];
}

export interface PairSide {
  ns: string;
  /** The name of this side's end of the veth pair. */
  veth: string;
  /** This side's address on the /30. */
  addr: string;
}

/** Makes both namespaces (loopback up) and the veth pair with its addresses; `onMade` hears each namespace as it is made. */
export function makeNetnsPair(a: PairSide, b: PairSide, onMade: (ns: string) => void = () => {}): void {
  for (const ns of [a.ns, b.ns]) {
    onMade(ns);
    ip(["netns", "add", ns]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  }
  ip(["-n", a.ns, "link", "add", a.veth, "type", "veth", "peer", "name", b.veth, "netns", b.ns]);
  for (const s of [a, b]) {
    ip(["-n", s.ns, "addr", "add", `${s.addr}/30`, "dev", s.veth]);
    ip(["-n", s.ns, "link", "set", s.veth, "up"]);
  }
}

/** Removes those of the namespaces that exist; returns what could not be removed. */
export function removeNetns(names: readonly string[]): string[] {
  const left: string[] = [];
  for (const ns of names) {
    try {
      if (existsSync(`/run/netns/${ns}`)) ip(["netns", "del", ns]);
    } catch (e) {
      left.push((e as Error).message);
    }
  }
  return left;
}
