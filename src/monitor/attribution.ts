// Naming the process behind a rejected packet: its socket (sock_diag, else the namespace's socket
// tables), then the processes inside the namespace that hold it. Works only while the socket
// exists: callers that hold the packet (NFQUEUE) or look within milliseconds of it get an answer,
// others get "unresolved". Never a guess: no socket, no owner, no name.
import type { ProcessInfo } from "../events/schema.ts";
import { hasPorts, hasSource, type FiveTuple } from "../net/five-tuple.ts";
import { ancestors, processFacts } from "./process-info.ts";
import { NamespaceProcesses } from "./namespace-processes.ts";
import { socketHolders } from "./socket-holders.ts";
import { findSockets, type SocketEntry } from "./socket-table.ts";
import { SockDiag } from "./sock-diag.ts";
import { INSIDE } from "../plan/addresses.ts";

/**
 * A held SYN waits for its attribution, and the watch thread reads everything else meanwhile.
 * Under a flood attribution gets at most this share of each window; attempts beyond it are
 * reported without a process (and still counted exactly in bypass_totals) so that the verdicts
 * and the reports keep up.
 */
const WINDOW_MS = 100;
const BUDGET_MS = 25;
const RECENT_MS = 1000;

export class Attributor {
  private readonly procs: NamespaceProcesses;
  private diag: SockDiag | null = null;
  private windowStart = 0;
  private spent = 0;
  /** Holders of sockets looked up by attributeLocal in the last RECENT_MS, by inode. */
  private readonly recent = new Map<string, { at: number; process: Exclude<ProcessInfo, null> }>();

  /**
   * `cmdPid` ends the ancestor chains (null while CMD has not started). `ownAddrs`: the addresses
   * the namespace's sockets can send from (a sandbox's are known), so a packet from any other
   * address is known to be forged; null where they are not known (a namespace being monitored).
   */
  constructor(
    nsPath: string,
    private readonly cmdPid: () => number | null,
    private readonly ownAddrs: ReadonlySet<string> | null = null,
    /**
     * Whether lookups share the flood budget below. The watch's do: a held SYN's verdict must not
     * wait behind a flood of lookups. The proxy's do not: each is one request already accepted and
     * waiting for its admission, and the budget cost bursts of requests their process.
     */
    private readonly capped = true,
  ) {
    this.procs = new NamespaceProcesses(nsPath);
    // The first scan stats every pid on the host; do it now, not while a SYN is held.
    for (const _ of this.procs.newestFirst());
    try {
      this.diag = new SockDiag(nsPath);
    } catch {
      // Without sock_diag the /proc tables still answer, only slower.
    }
  }

  /**
   * The socket(s) the packet came from: by an exact sock_diag lookup where possible, else the
   * namespace's /proc tables; `{ error }` when the lookup itself failed (not the same as no socket).
   */
  private sockets(t: FiveTuple): SocketEntry[] | { error: string } {
    if (this.diag && hasSource(t)) {
      const s = this.diag.find(t);
      if (s && "error" in s) return s;
      if (s && s.inode > 0) return [{ inode: s.inode, state: s.state }];
      if (t.proto === "tcp") return [];
    }
    if (t.proto !== "tcp" && t.proto !== "udp") return [];
    // No sock_diag, or a UDP lookup it could not answer: the namespace's /proc tables.
    for (const pid of this.procs.newestFirst()) return findSockets(pid, t);
    return [];
  }

  /**
   * The process behind a datagram that reached proxywall's own socket (the DNS responder) from
   * `addr`:`port`: its socket is found by that local end alone (the redirect changed the
   * destination), and it still exists, since its owner waits for the answer.
   */
  attributeLocal(family: "ipv4" | "ipv6", addr: string, port: number): Exclude<ProcessInfo, null> {
    return this.budgeted(() => {
      if (!this.diag) return { resolved: false, why: "sock_diag cannot be used in the sandbox namespace" };
      let found = this.diag.findUdpByLocal(family, addr, port);
      // An IPv4 datagram from a dual-stack (AF_INET6) socket: that socket shows the address mapped.
      if (family === "ipv4" && Array.isArray(found) && found.length === 0) found = this.diag.findUdpByLocal("ipv6", `::ffff:${addr}`, port);
      if (!Array.isArray(found)) return { resolved: false, why: `the socket lookup failed: ${found.error}` };
      if (found.length === 0) return { resolved: false, why: "no UDP socket in the sandbox has that address and port any more (its sender closed it before the answer)" };
      // A resolver asks A and AAAA, and again after REFUSED, from one socket: the holders of a
      // socket that still exists (same inode) are looked up once, not per query.
      const key = found.map((f) => f.inode).join(",");
      const now = performance.now();
      const hit = this.recent.get(key);
      if (hit && now - hit.at < RECENT_MS) return hit.process;
      const process = this.holders(found);
      if (this.recent.size > 64) this.recent.clear();
      if (process.resolved) this.recent.set(key, { at: now, process });
      return process;
    });
  }

  close(): void {
    this.diag?.close();
    this.diag = null;
  }

  attribute(t: FiveTuple, held: boolean): Exclude<ProcessInfo, null> {
    return this.budgeted(() => this.lookup(t, held));
  }

  private budgeted(f: () => Exclude<ProcessInfo, null>): Exclude<ProcessInfo, null> {
    const t0 = performance.now();
    if (t0 - this.windowStart > WINDOW_MS) {
      this.windowStart = t0;
      this.spent = 0;
    }
    if (this.capped && this.spent > BUDGET_MS) {
      return { resolved: false, why: "not looked up: attempts came faster than proxywall attributes them (a flood); bypass_totals still counts every one" };
    }
    try {
      return f();
    } finally {
      this.spent += performance.now() - t0;
    }
  }

  private lookup(t: FiveTuple, held: boolean): Exclude<ProcessInfo, null> {
    if (!hasPorts(t.proto)) return { resolved: false, why: `${t.proto} has no ports to find its socket by (a raw or ping socket sent it)` };
    if (t.proto === "sctp" || t.proto === "dccp") return { resolved: false, why: `proxywall looks up TCP, UDP and UDP-Lite sockets only, not ${t.proto}` };
    const sockets = this.sockets(t);
    if (!Array.isArray(sockets)) return { resolved: false, why: `the socket lookup failed: ${sockets.error}` };
    if (sockets.length === 0) return { resolved: false, why: noSocketWhy(t, held, this.ownAddrs) };
    return this.holders(sockets);
  }

  private holders(sockets: readonly SocketEntry[]): Exclude<ProcessInfo, null> {
    const holders = socketHolders(this.procs.newestFirst(), sockets.map((s) => s.inode), (pid) => this.procs.inside(pid), processFacts);
    const facts = holders.filter((f) => f !== null);
    if (facts.length === 0) return { resolved: false, why: "the socket exists but no process in the sandbox holds it any more" };
    // Oldest first: a socket shared by fork() belongs first to the process that made it.
    facts.sort((a, b) => (a.start_time ?? "").localeCompare(b.start_time ?? "") || a.pid - b.pid);
    const [first, ...rest] = facts;
    const { ppid, ...own } = first!;
    return {
      resolved: true,
      ...own,
      ancestors: own.pid === this.cmdPid() ? [] : ancestors(ppid, this.cmdPid()),
      also_held_by: rest.map(({ ppid: _ppid, ...f }) => f),
    };
  }
}

/**
 * Why no socket matched. A held TCP SYN's socket exists until the verdict unless another thread
 * closed it; more often nothing made it through a socket of that protocol at all: a raw socket
 * (CAP_NET_RAW) forged it, which a source address the sandbox does not have shows for certain.
 */
function noSocketWhy(t: FiveTuple, held: boolean, own: ReadonlySet<string> | null): string {
  const proto = t.proto.toUpperCase();
  if (own && t.srcAddr && !own.has(t.srcAddr) && !isLocalScope(t.srcAddr)) {
    return `no ${proto} socket has the source ${t.srcAddr}, which is not an address of the sandbox: a raw socket forged the packet (CMD has CAP_NET_RAW)`;
  }
  if (held) return `no ${proto} socket sent it although the packet was held: a raw socket (CAP_NET_RAW) made it, or another thread closed the socket meanwhile`;
  return `the socket was already closed when proxywall looked (a short-lived ${proto} client)`;
}

/** Loopback and link-local addresses, which every namespace has (fe80:: on each link). */
function isLocalScope(a: string): boolean {
  return a.startsWith("127.") || a === "::1" || /^fe[89ab][0-9a-f]:/i.test(a);
}

/** What a sandbox's sockets can send from (every sandbox has the same inside addresses). */
export const SANDBOX_ADDRS: ReadonlySet<string> = new Set([INSIDE.v4, INSIDE.v6]);
