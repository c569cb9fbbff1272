// Event lines in, one summary per sandbox out, in bounded structures: counts per (program,
// destination, proto), per proxy destination and outcome, the degraded parts, the hints, and a
// bounded timeline. Lines are validated against the event schema; anything else is counted and
// skipped. Pure: no I/O.
import type { BypassDetect, BypassTotals, Degraded, EventLine, ProxyConnect, SandboxClosed, SandboxReady } from "../events/schema.ts";
import { parseEventLine } from "./event-line.ts";
import { Timeline } from "./timeline.ts";
import type { Dest, Program, ProxyDest, Report, SandboxSummary } from "./types.ts";

export { parseEventLine } from "./event-line.ts";
export type { Dest, Program, ProxyDest, Report, SandboxSummary } from "./types.ts";

/** Bounds per sandbox; what goes beyond is counted under one "*" entry. */
export const LIMITS = { sandboxes: 100, programs: 200, destsPerProgram: 20, proxyDests: 300, pids: 64, dnsQueries: 5, hints: 50 };

type ProgramAcc = Program & {
  pidSet: Set<number>;
  /** Destinations in the order first seen, and an index by address, then by port and protocol. */
  destList: Dest[];
  destIndex: Map<string, Map<number, Dest>>;
  otherDests: Dest | null;
};

/**
 * A node of the index of programs: the first level is the executable, each next one a parent's.
 * Nested maps of the strings the lines already hold, rather than one key built per line (building
 * and hashing that key cost more than the rest of a bypass line's counting).
 */
interface ProgramNode {
  prog: ProgramAcc | null;
  next: Map<string, ProgramNode> | null;
}

const base = (exe: string | null) => (exe === null ? "?" : (exe.split("/").pop() ?? exe));

class SandboxAcc {
  ready: SandboxReady | null = null;
  closed: SandboxClosed | null = null;
  first = Infinity;
  last = -Infinity;
  bypass = { events: 0, tcp: 0, udp: 0, observed: 0 };
  totals: BypassTotals | null = null;
  programs = new Map<string, ProgramAcc>();
  private readonly programIndex = new Map<string, ProgramNode>();
  proxy = { requests: 0, allowed: 0, refused: 0, bytesUp: 0, bytesDown: 0 };
  proxyDests = new Map<string, ProxyDest>();
  degraded = new Map<string, Degraded>();
  hints: { hint: string; count: number }[] = [];
  lastHint: { hint: string; count: number } | null = null;
  timeline = new Timeline();

  constructor(readonly id: string) {}

  add(e: EventLine, t: number): void {
    if (t < this.first) this.first = t;
    if (t > this.last) this.last = t;
    switch (e.event) {
      case "sandbox_ready":
        this.ready = e;
        break;
      case "sandbox_closed":
        this.closed = e;
        break;
      case "degraded":
        this.degraded.set(e.component, e);
        break;
      case "bypass_totals":
        if (e.final || !this.totals?.final) this.totals = e;
        break;
      case "bypass_detect":
        this.addBypass(e, t);
        break;
      case "proxy_connect":
        this.addProxy(e, t);
        break;
    }
  }

  private addBypass(e: BypassDetect, t: number): void {
    const b = this.bypass;
    b.events++;
    if (e.proto === "tcp") b.tcp++;
    else b.udp++;
    if (e.action === "observe") b.observed++;
    const p = e.process;
    const exe = p?.resolved ? p.exe : null;
    const prog = this.programOf(e);
    prog.attempts++;
    if (p?.resolved && prog.pidSet.size < LIMITS.pids) prog.pidSet.add(p.pid);
    const d = this.destOf(prog, e);
    d.count++;
    if (e.dns_query !== null && d.dnsQueries.length < LIMITS.dnsQueries && !d.dnsQueries.includes(e.dns_query)) d.dnsQueries.push(e.dns_query);
    this.countHint(e.hint);
    const label = this.timeline.detailFull ? "" : `${base(exe)}: ${e.proto} ${hostPort(e.dst_addr, e.dst_port)}${e.dns_query ? ` (${e.dns_query})` : ""}`;
    this.timeline.add(t, "bypass", label);
  }

  /** The program entry of `e`'s process and its parents; past the limit, the one "*" entry. */
  private programOf(e: BypassDetect): ProgramAcc {
    const p = e.process;
    const full = this.programs.size >= LIMITS.programs;
    const step = (level: Map<string, ProgramNode>, key: string): ProgramNode | null => {
      let node = level.get(key);
      if (!node && !full) level.set(key, (node = { prog: null, next: null }));
      return node ?? null;
    };
    let node = step(this.programIndex, p === null ? "?none" : p.resolved ? (p.exe ?? "?") : "?unresolved");
    if (p?.resolved) for (const a of p.ancestors) node = node && step((node.next ??= new Map()), a.exe ?? "?");
    if (node?.prog) return node.prog;
    const key = p === null ? "?none" : p.resolved ? [p.exe ?? "?", ...p.ancestors.map((a) => a.exe ?? "?")].join("\0") : "?unresolved";
    const prog = this.newProgram(full ? "*" : key, e);
    if (node) node.prog = prog;
    return prog;
  }

  /** The destination entry of `e` in `prog`; past the limit, the program's one "other" entry. */
  private destOf(prog: ProgramAcc, e: BypassDetect): Dest {
    const portKey = e.dst_port * 2 + (e.proto === "udp" ? 1 : 0);
    let byPort = prog.destIndex.get(e.dst_addr);
    let d = byPort?.get(portKey);
    if (d) return d;
    if (prog.destList.length >= LIMITS.destsPerProgram) {
      if (!prog.otherDests) prog.destList.push((prog.otherDests = { proto: "*", addr: "*", port: 0, count: 0, dnsQueries: [] }));
      return prog.otherDests;
    }
    d = { proto: e.proto, addr: e.dst_addr, port: e.dst_port, count: 0, dnsQueries: [] };
    if (!byPort) prog.destIndex.set(e.dst_addr, (byPort = new Map()));
    byPort.set(portKey, d);
    prog.destList.push(d);
    return d;
  }

  /** A new program entry under `key` ("*" once there are too many). */
  private newProgram(key: string, e: BypassDetect): ProgramAcc {
    const existing = this.programs.get(key);
    if (existing) return existing;
    const p = e.process;
    const other = key === "*";
    const why = other ? `more than ${LIMITS.programs} programs` : p === null ? "not attributed" : p.resolved ? null : p.why;
    const prog: ProgramAcc = {
      exe: other || !p?.resolved ? null : p.exe,
      ancestors: other || !p?.resolved ? [] : p.ancestors.map((a) => a.exe),
      why,
      attempts: 0,
      pids: 0,
      cmdline: other || !p?.resolved ? null : p.cmdline,
      dests: [],
      pidSet: new Set(),
      destList: [],
      destIndex: new Map(),
      otherDests: null,
    };
    this.programs.set(key, prog);
    return prog;
  }

  /** Hints are few and long: compared with the last one first, then with each (bounded). */
  private countHint(hint: string): void {
    if (hint === this.lastHint?.hint) {
      this.lastHint.count++;
      return;
    }
    let h = this.hints.find((x) => x.hint === hint);
    if (!h) {
      if (this.hints.length >= LIMITS.hints) return;
      h = { hint, count: 0 };
      this.hints.push(h);
    }
    h.count++;
    this.lastHint = h;
  }

  private addProxy(e: ProxyConnect, t: number): void {
    const allowed = e.outcome === "ok";
    this.proxy.requests++;
    this.proxy[allowed ? "allowed" : "refused"]++;
    this.proxy.bytesUp += e.bytes_up;
    this.proxy.bytesDown += e.bytes_down;
    const rule = (e as { rule?: unknown }).rule;
    let key = `${e.dst_host} ${e.dst_port} ${e.outcome}`;
    if (!this.proxyDests.has(key) && this.proxyDests.size >= LIMITS.proxyDests) key = `* ${allowed}`;
    let d = this.proxyDests.get(key);
    if (!d) {
      const other = key.startsWith("* ");
      d = { host: other ? "*" : e.dst_host, port: other ? 0 : e.dst_port, outcome: other ? (allowed ? "ok" : "(other)") : e.outcome, allowed, count: 0, bytesUp: 0, bytesDown: 0, statuses: [], methods: [], rules: [], error: other ? null : e.error };
      this.proxyDests.set(key, d);
    }
    d.count++;
    d.bytesUp += e.bytes_up;
    d.bytesDown += e.bytes_down;
    if (d.statuses.length < 5 && !d.statuses.includes(e.status)) d.statuses.push(e.status);
    if (d.methods.length < 5 && !d.methods.includes(e.method)) d.methods.push(e.method);
    if (typeof rule === "string" && d.rules.length < 5 && !d.rules.includes(rule)) d.rules.push(rule);
    this.timeline.add(t, allowed ? "allowed" : "refused", this.timeline.detailFull ? "" : `${e.method} ${hostPort(e.dst_host, e.dst_port)} ${e.status} ${e.outcome}`);
  }

  summary(): SandboxSummary {
    const programs = [...this.programs.values()]
      .map(({ pidSet, destList, destIndex: _, otherDests: __, ...p }) => ({ ...p, pids: pidSet.size, dests: [...destList].sort((a, b) => b.count - a.count) }))
      .sort((a, b) => b.attempts - a.attempts);
    const dests = [...this.proxyDests.values()].sort((a, b) => Number(a.allowed) - Number(b.allowed) || b.count - a.count);
    return {
      id: this.id,
      ready: this.ready,
      closed: this.closed,
      first: this.first,
      last: this.last,
      bypass: { ...this.bypass },
      totals: this.totals,
      programs,
      proxy: { ...this.proxy, dests },
      degraded: [...this.degraded.values()],
      hints: this.hints.map((h) => ({ ...h })).sort((a, b) => b.count - a.count),
      timeline: this.timeline.data(),
    };
  }
}

/** `addr:port`, with IPv6 addresses in brackets. */
export const hostPort = (host: string, port: number) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);

export class ReportAggregator {
  private readonly sandboxes = new Map<string, SandboxAcc>();
  private lines = 0;
  private events = 0;
  private skipped = { count: 0, first: null as string | null };
  private otherSandboxLines = 0;

  /** One input line; `where` (FILE:LINE) names it in the warning about skipped lines. */
  addLine(line: string, where: () => string): void {
    if (line.trim() === "") return;
    this.lines++;
    const e = parseEventLine(line);
    if (typeof e === "string") {
      if (this.skipped.count++ === 0) this.skipped.first = `${where()}: ${e}`;
      return;
    }
    this.addEvent(e);
  }

  addEvent(e: EventLine): void {
    this.events++;
    let acc = this.sandboxes.get(e.sandbox);
    if (!acc) {
      if (this.sandboxes.size >= LIMITS.sandboxes) {
        this.otherSandboxLines++;
        return;
      }
      acc = new SandboxAcc(e.sandbox);
      this.sandboxes.set(e.sandbox, acc);
    }
    acc.add(e, Date.parse(e.ts));
  }

  report(): Report {
    return { lines: this.lines, events: this.events, skipped: { ...this.skipped }, otherSandboxLines: this.otherSandboxLines, sandboxes: [...this.sandboxes.values()].map((s) => s.summary()) };
  }
}
