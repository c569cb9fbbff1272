// Counting bypass attempts per (proto, destination, executable) for bypass_summary lines.
import type { BypassDetect, BypassSummary } from "../events/schema.ts";
import { nowTs } from "../events/bypass-event.ts";

interface Entry {
  proto: BypassDetect["proto"];
  dst_addr: string;
  dst_port: number;
  exe: string | null;
  count: number;
  first_seen: string;
  last_seen: string;
}

/** Keys kept apart; beyond this (a port scan, say) attempts count under dst_addr "*", port 0. */
export const MAX_KEYS = 10_000;

export class BypassSummarizer {
  private readonly entries = new Map<string, Entry>();
  /** Keys counted since the last periodic summary. */
  private readonly changed = new Set<string>();
  events = 0;

  add(e: BypassDetect): void {
    this.events++;
    const exe = e.process?.resolved ? e.process.exe : null;
    let key = `${e.proto} ${e.dst_addr} ${e.dst_port} ${exe ?? ""}`;
    let entry = this.entries.get(key);
    if (!entry && this.entries.size >= MAX_KEYS) {
      key = `${e.proto} * 0 `;
      entry = this.entries.get(key);
      if (!entry) {
        entry = { proto: e.proto, dst_addr: "*", dst_port: 0, exe: null, count: 0, first_seen: e.ts, last_seen: e.ts };
        this.entries.set(key, entry);
      }
    }
    if (entry) {
      entry.count++;
      entry.last_seen = e.ts;
    } else {
      this.entries.set(key, { proto: e.proto, dst_addr: e.dst_addr, dst_port: e.dst_port, exe, count: 1, first_seen: e.ts, last_seen: e.ts });
    }
    this.changed.add(key);
  }

  /** Periodic: a line for each key counted since the last one. Final: a line for every key. */
  lines(sandbox: string, final: boolean): BypassSummary[] {
    const keys = final ? [...this.entries.keys()] : [...this.changed];
    this.changed.clear();
    const ts = nowTs();
    return keys.map((k) => ({ v: 1, event: "bypass_summary", ts, sandbox, ...this.entries.get(k)!, final }));
  }
}
