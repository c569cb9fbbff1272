// Which sockets match a packet, from the socket tables of a network namespace:
// /proc/PID/net/tcp{,6} and udp{,6} show the table of the namespace PID lives in. The fallback of
// attribution.ts where sock_diag cannot answer (it works only while the socket exists).
import { readFileSync } from "node:fs";
import type { FiveTuple } from "../net/five-tuple.ts";
import { formatIPv6, ipv6Groups } from "../net/ip-address.ts";

export interface SocketEntry {
  inode: number;
  state: number;
}

function hexIPv4(h: string): string {
  // Four bytes in host (little-endian) order.
  return `${parseInt(h.slice(6, 8), 16)}.${parseInt(h.slice(4, 6), 16)}.${parseInt(h.slice(2, 4), 16)}.${parseInt(h.slice(0, 2), 16)}`;
}

function hexIPv6(h: string): string {
  const groups: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = h.slice(w * 8, w * 8 + 8);
    // Each 32-bit word is in host order: reverse its bytes.
    const be = word.slice(6, 8) + word.slice(4, 6) + word.slice(2, 4) + word.slice(0, 2);
    groups.push(parseInt(be.slice(0, 4), 16), parseInt(be.slice(4, 8), 16));
  }
  return formatIPv6(groups);
}

function addrPort(field: string): { addr: string; port: number } {
  const [a, p] = field.split(":");
  return { addr: a!.length === 8 ? hexIPv4(a!) : hexIPv6(a!), port: parseInt(p!, 16) };
}

/** The IPv4 address as an AF_INET6 dual-stack socket shows it. */
function mapped(v4: string): string {
  return formatIPv6(ipv6Groups(`::ffff:${v4}`)!);
}

/**
 * Sockets in one socket table's text (/proc/PID/net/tcp, udp6, ...) that match the packet: local
 * port (and address), remote address and port. `v6table`: the table is tcp6/udp6, where an IPv4
 * packet's socket (dual-stack) shows its addresses IPv4-mapped.
 */
export function socketsInTable(text: string, t: FiveTuple, v6table: boolean): SocketEntry[] {
  const found: SocketEntry[] = [];
  const want = (a: string) => (t.family === "ipv4" && v6table ? mapped(a) : a);
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = addrPort(f[1]!);
    if (t.srcPort !== null && local.port !== t.srcPort) continue;
    const remote = addrPort(f[2]!);
    const unconnected = remote.port === 0;
    // UDP sockets that sendto() without connect() show no remote end.
    if (!(unconnected && t.proto === "udp") && (remote.port !== t.dstPort || remote.addr !== want(t.dstAddr))) continue;
    if (t.srcAddr && !/^(0\.0\.0\.0|::)$/.test(local.addr) && local.addr !== want(t.srcAddr)) continue;
    const inode = Number(f[9]);
    if (inode > 0) found.push({ inode, state: parseInt(f[3]!, 16) });
  }
  return found;
}

/** Sockets in the namespace of `pid` that match the packet (socketsInTable over its tables). */
export function findSockets(pid: number, t: FiveTuple): SocketEntry[] {
  const tables = t.family === "ipv4" ? [t.proto, `${t.proto}6`] : [`${t.proto}6`];
  const found: SocketEntry[] = [];
  for (const table of tables) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "latin1");
    } catch {
      continue;
    }
    found.push(...socketsInTable(text, t, table.endsWith("6")));
  }
  return found;
}
