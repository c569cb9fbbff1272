// `proxywall report [EVENTS...]`: event lines (files or standard input, any mix of runs) in, one
// summary per sandbox out, as markdown (CI job summary, pull-request comment), HTML (one
// self-contained page) or text. The input is read line by line and aggregated in bounded
// structures, so memory stays flat however long the input is.
import { defineCommand } from "citty";
import * as v from "valibot";
import { closeSync, writeSync } from "node:fs";
import { ReportAggregator } from "../report/aggregate.ts";
import { renderHtml } from "../report/html.ts";
import { renderMarkdown } from "../report/markdown.ts";
import { renderText } from "../report/text.ts";
import { LineReader } from "../report/lines.ts";
import { validate } from "./argv.ts";
import { usageError } from "../exit-codes.ts";
import { openInput, readChunks, unreadableWhy } from "../sys/input-file.ts";

const FORMATS = { markdown: renderMarkdown, html: renderHtml, text: renderText } as const;

const Options = v.object({
  files: v.array(v.string()),
  format: v.optional(v.picklist(["markdown", "html", "text"], "must be markdown, html or text"), "text"),
});

/** The longest event line read; a longer one is skipped (a cmdline of 256 KiB is already absurd). */
const MAX_LINE = 256 * 1024;

/** A file opened for reading, or a usage error (exit 2) that says why it cannot be read. */
function openFile(file: string): number {
  const r = openInput(file);
  if ("why" in r) throw usageError(`cannot read ${file}: ${r.why}`);
  return r.fd;
}


function writeOut(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(1, bytes, off, bytes.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") Bun.sleepSync(1);
      else throw e;
    }
  }
}

export default defineCommand({
  meta: { name: "report", description: "Summarize event lines (files or standard input, any mix of runs) per sandbox: what was blocked, what the proxy allowed and refused, what was degraded, and the fixes" },
  args: {
    events: { type: "positional", required: false, description: "event files to read (JSON lines from run or monitor); - or nothing for standard input" },
    format: { type: "string", description: "markdown (CI job summary, pull-request comment), html (one self-contained page) or text (default: text)", valueHint: "markdown|html|text" },
  },
  async run({ args }) {
    const opts = validate(Options, { files: args._.map(String), format: args.format });
    const files = opts.files.length === 0 ? ["-"] : opts.files;
    // Every file is opened before any is read: an unreadable one fails at once, with no output.
    const fds = files.map((f) => (f === "-" ? 0 : openFile(f)));
    const agg = new ReportAggregator();
    let oversize = 0;
    try {
      for (const [i, file] of files.entries()) {
        const name = file === "-" ? "stdin" : file;
        let lineNo = 0;
        const splitter = new LineReader((line) => {
          lineNo++;
          agg.addLine(line, () => `${name}:${lineNo}`);
        }, MAX_LINE);
        try {
          await readChunks(fds[i]!, (b) => splitter.push(b));
        } catch (e) {
          throw usageError(`cannot read ${name}: ${unreadableWhy(e)}`);
        }
        splitter.end();
        oversize += splitter.oversize;
      }
    } finally {
      for (const fd of fds) if (fd !== 0) closeSync(fd);
    }
    const report = agg.report();
    writeOut(FORMATS[opts.format](report));
    const skipped = report.skipped.count + oversize;
    if (skipped > 0) {
      const first = report.skipped.first ?? `a line longer than ${MAX_LINE / 1024} KiB`;
      console.error(`proxywall: report skipped ${skipped === 1 ? "1 line" : `${skipped} lines`} that ${skipped === 1 ? "is" : "are"} not proxywall events (first: ${first})`);
    }
    return 0;
  },
});
