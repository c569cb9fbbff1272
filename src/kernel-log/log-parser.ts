// Streaming kernel-log parser: text in, bypass_detect events out, counts of what was skipped.
import { bypassEvent } from "../events/bypass-event.ts";
import type { BypassDetect, Source } from "../events/schema.ts";
import { kernelRecord } from "./kmsg-record.ts";
import { parseLogFields } from "./log-fields.ts";
import type { PrefixMatcher } from "./log-prefix.ts";
import { LineSplitter, MAX_LINE } from "./line-splitter.ts";
import { ByteLineSplitter } from "./byte-line-splitter.ts";

export interface ParseStats {
  lines: number;
  records: number;
  events: number;
  skipped_incomplete: number;
  skipped_other_proto: number;
  oversize_lines: number;
}

export interface ParserOptions {
  matcher: PrefixMatcher;
  source: Source;
  proxy?: { addrs: readonly string[]; port: number } | undefined;
  onEvent: (event: BypassDetect) => void;
}

export class KernelLogParser {
  private readonly splitter: LineSplitter;
  /** For input that arrives as bytes (a file, a pipe); made on first use. */
  private byteSplitter: ByteLineSplitter | null = null;
  private readonly counts = { lines: 0, records: 0, events: 0, skipped_incomplete: 0, skipped_other_proto: 0 };

  constructor(private readonly opts: ParserOptions) {
    // The splitter drops lines without the marker before cutting them out of the chunk; they still
    // count as lines read.
    this.splitter = new LineSplitter((line) => this.line(line), MAX_LINE, opts.matcher.marker);
  }

  push(text: string): void {
    this.splitter.push(text);
  }

  /**
   * UTF-8 log text as it is read, in chunks cut anywhere (even inside a character). Same result as
   * push() of the decoded text, in constant memory: lines without the marker are never decoded, and
   * `bytes` is not kept, so the caller can read the next chunk into the same buffer.
   */
  pushBytes(bytes: Uint8Array): void {
    this.byteSplitter ??= new ByteLineSplitter((line) => this.line(line), MAX_LINE, this.opts.matcher.marker);
    this.byteSplitter.push(bytes);
  }

  end(): void {
    this.splitter.end();
    this.byteSplitter?.end();
  }

  stats(): ParseStats {
    const { splitter, byteSplitter } = this;
    const filtered = splitter.filtered + (byteSplitter?.filtered ?? 0);
    const oversize = splitter.oversize + (byteSplitter?.oversize ?? 0);
    return { ...this.counts, lines: this.counts.lines + filtered, oversize_lines: oversize };
  }

  /** One line of log text; also the entry point for sources that already deliver whole records. */
  line(line: string): void {
    this.counts.lines++;
    const { matcher } = this.opts;
    if (line.indexOf(matcher.marker) === -1) return;
    const record = kernelRecord(line);
    if (!record) return;
    const m = matcher.match(record.message);
    if (!m) return;
    this.counts.records++;
    const parsed = parseLogFields(m.rest);
    if (!parsed.ok) {
      if (parsed.why === "incomplete") this.counts.skipped_incomplete++;
      else this.counts.skipped_other_proto++;
      return;
    }
    this.counts.events++;
    this.opts.onEvent(
      bypassEvent({ sandbox: m.sandbox, source: this.opts.source, proxy: this.opts.proxy }, parsed.fields, record.logTime),
    );
  }
}
