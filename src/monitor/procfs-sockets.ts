// Who owns a socket, from /proc: the namespace's socket tables (/proc/PID/net/tcp{,6}, udp{,6}
// show the table of the namespace PID lives in), then the fd tables of the processes in that
// namespace. Works only while the socket exists; callers that hold the packet (NFQUEUE) or look
// within milliseconds of it get an answer, others get "unresolved", never a guess.
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { formatIPv6, ipv6Groups } from "../net/ip-address.ts";

export interface SocketKey {
  proto: "tcp" | "udp";
  family: "ipv4" | "ipv6";
  srcAddr: string | null;
  srcPort: number | null;
  dstAddr: string;
  dstPort: number;
}

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

/** Sockets in the namespace of `pid` that match the packet: local port (and address), remote address and port. */
export function findSockets(pid: number, key: SocketKey): SocketEntry[] {
  const tables = key.family === "ipv4" ? [key.proto, `${key.proto}6`] : [`${key.proto}6`];
  const found: SocketEntry[] = [];
  for (const table of tables) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "latin1");
    } catch {
      continue;
    }
    const v6table = table.endsWith("6");
    const want = (a: string) => (key.family === "ipv4" && v6table ? mapped(a) : a);
    const lines = text.split("\n");
    for (let i = 1; i < lines.length; i++) {
      const f = lines[i]!.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = addrPort(f[1]!);
      if (key.srcPort !== null && local.port !== key.srcPort) continue;
      const remote = addrPort(f[2]!);
      const unconnected = remote.port === 0;
      // UDP sockets that sendto() without connect() show no remote end.
      if (!(unconnected && key.proto === "udp") && (remote.port !== key.dstPort || remote.addr !== want(key.dstAddr))) continue;
      if (key.srcAddr && !/^(0\.0\.0\.0|::)$/.test(local.addr) && local.addr !== want(key.srcAddr)) continue;
      const inode = Number(f[9]);
      if (inode > 0) found.push({ inode, state: parseInt(f[3]!, 16) });
    }
  }
  return found;
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function holds(pid: number, wanted: ReadonlySet<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if (wanted.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {}
  }
  return false;
}

/**
 * Processes with an fd open on one of the socket inodes, each as `describe` sees it. Reading every fd of every process is
 * what costs, and a short-lived client may be exiting while we look; so the candidates come
 * newest first and the search stops at the first holder, then asks only its parent and its
 * children (a socket is shared by fork()) whether they hold it too.
 */
export function socketHolders<T>(candidates: Iterable<number>, inodes: readonly number[], inside: (pid: number) => boolean, describe: (pid: number) => T): T[] {
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  for (const pid of candidates) {
    if (!holds(pid, wanted)) continue;
    // Described the moment it is found: a client that exits right after its attempt may be gone
    // a few hundred microseconds later.
    const first = describe(pid);
    const relatives = [parentOf(pid), ...childrenOf(pid)].filter((r): r is number => r !== null && r > 1 && inside(r));
    return [first, ...relatives.filter((r) => holds(r, wanted)).map(describe)];
  }
  return [];
}

/** How many pids below the newest one newestFirst() tries before it lists /proc. */
const RECENT_PIDS = 16;

/**
 * The pid the kernel handed out last in proxywall's pid namespace (the last field of
 * /proc/loadavg), or 0 when unknown.
 */
function lastPid(): number {
  try {
    const text = readFileSync("/proc/loadavg", "latin1");
    return Number(text.slice(text.lastIndexOf(" ") + 1)) || 0;
  } catch {
    return 0;
  }
}

/** The process (thread group) that thread `id` belongs to, or null when it is gone. */
function tgidOf(id: number): number | null {
  try {
    const m = /^Tgid:\s+(\d+)$/m.exec(readFileSync(`/proc/${id}/status`, "latin1"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * The processes inside one network namespace, kept up to date cheaply: a pid is checked
 * (one stat of /proc/PID/ns/net) only the first time it is seen.
 */
export class NamespaceProcesses {
  private readonly known = new Map<number, boolean>();
  private readonly ns: { ino: number; dev: number };

  constructor(nsPath: string) {
    const st = statSync(nsPath);
    this.ns = { ino: st.ino, dev: st.dev };
  }

  /** Whether `pid` lives in the namespace (one stat, remembered). */
  inside(pid: number): boolean {
    let isInside = this.known.get(pid);
    if (isInside === undefined) {
      const now = this.insideNow(pid);
      if (now === null) return false;
      this.known.set(pid, (isInside = now));
    }
    return isInside;
  }

  /** Whether `pid` lives in the namespace now (one stat, not remembered); null when it cannot be told (gone). */
  private insideNow(pid: number): boolean | null {
    try {
      const st = statSync(`/proc/${pid}/ns/net`);
      return st.ino === this.ns.ino && st.dev === this.ns.dev;
    } catch {
      return null;
    }
  }

  /**
   * Pids in the namespace, newest first (a short-lived culprit is usually the newest), checked
   * lazily: a caller that stops at the first match stats only what it looked at. The processes of
   * the few ids just below the last one the kernel handed out come first, from a stat and a read
   * each: listing /proc takes 0.3 ms on a quiet machine, about a third of the time a python client
   * that exits after a rejected send keeps its socket.
   */
  *newestFirst(): Generator<number> {
    const tried = new Set<number>();
    for (let id = lastPid(), n = 0; id > 1 && n < RECENT_PIDS; id--, n++) {
      if (this.insideNow(id) !== true) continue;
      // The ids handed out include threads' (node, say, starts several): /proc/TID answers too,
      // but a report names the process.
      const pid = tgidOf(id);
      if (pid === null || tried.has(pid)) continue;
      tried.add(pid);
      yield pid;
    }
    const all: number[] = [];
    for (const name of readdirSync("/proc")) {
      const c = name.charCodeAt(0);
      if (c >= 49 && c <= 57) all.push(Number(name));
    }
    all.sort((a, b) => b - a);
    // Forget pids that are gone, so a reused pid is checked afresh.
    const live = new Set(all);
    for (const pid of this.known.keys()) if (!live.has(pid)) this.known.delete(pid);
    for (const pid of all) if (!tried.has(pid) && this.inside(pid)) yield pid;
  }
}
