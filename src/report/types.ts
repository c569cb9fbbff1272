// The shapes of a report: what aggregate.ts makes and the formats read.
import type { BypassTotals, Degraded, SandboxClosed, SandboxReady } from "../events/schema.ts";
import type { TimelineData } from "./timeline.ts";

export interface Dest {
  proto: string;
  addr: string;
  port: number;
  count: number;
  dnsQueries: string[];
}

export interface Program {
  /** The executable, null when the process is not known (see `why`). */
  exe: string | null;
  /** Executables of the parents, nearest first, up to CMD. */
  ancestors: (string | null)[];
  why: string | null;
  attempts: number;
  /** Distinct pids seen, up to LIMITS.pids. */
  pids: number;
  cmdline: string[] | null;
  dests: Dest[];
}

export interface ProxyDest {
  host: string;
  port: number;
  outcome: string;
  allowed: boolean;
  count: number;
  bytesUp: number;
  bytesDown: number;
  statuses: number[];
  methods: string[];
  rules: string[];
  error: string | null;
}

export interface SandboxSummary {
  id: string;
  ready: SandboxReady | null;
  closed: SandboxClosed | null;
  /** First and last `ts` of its lines, in ms since the epoch. */
  first: number;
  last: number;
  bypass: { events: number; tcp: number; udp: number; observed: number };
  totals: BypassTotals | null;
  programs: Program[];
  proxy: { requests: number; allowed: number; refused: number; bytesUp: number; bytesDown: number; dests: ProxyDest[] };
  degraded: Degraded[];
  hints: { hint: string; count: number }[];
  timeline: TimelineData;
}

export interface Report {
  /** Non-empty lines read. */
  lines: number;
  events: number;
  skipped: { count: number; first: string | null };
  /** Lines of sandboxes beyond LIMITS.sandboxes, counted only. */
  otherSandboxLines: number;
  sandboxes: SandboxSummary[];
}
