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

export class BypassSummarizer {
  private readonly entries = new Map<string, Entry>();
  private changed = false;
  events = 0;

  add(e: BypassDetect): void {
    this.events++;
    const exe = e.process?.resolved ? e.process.exe : null;
    const key = `${e.proto} ${e.dst_addr} ${e.dst_port} ${exe ?? ""}`;
    const entry = this.entries.get(key);
    if (entry) {
      entry.count++;
      entry.last_seen = e.ts;
    } else {
      this.entries.set(key, { proto: e.proto, dst_addr: e.dst_addr, dst_port: e.dst_port, exe, count: 1, first_seen: e.ts, last_seen: e.ts });
    }
    this.changed = true;
  }

  /** Lines for every key; empty between intervals with nothing new, unless final. */
  lines(sandbox: string, final: boolean): BypassSummary[] {
    if (!this.changed && !final) return [];
    this.changed = false;
    const ts = nowTs();
    return [...this.entries.values()].map((e) => ({ v: 1, event: "bypass_summary", ts, sandbox, ...e, final }));
  }
}
