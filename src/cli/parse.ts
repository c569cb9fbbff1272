// `proxywall parse [FILE|-]`: kernel-log text in, one bypass_detect JSON line per record out.
import { defineCommand } from "citty";
import { noFTL } from "bun:jsc";
import * as v from "valibot";
import { closeSync } from "node:fs";
import { KernelLogParser } from "../kernel-log/log-parser.ts";
import { anySandboxPrefix, exactPrefix } from "../kernel-log/log-prefix.ts";
import { EventWriter } from "../events/event-writer.ts";
import { eventFormat, EventFormatOption } from "../events/formats/index.ts";
import { bypassEventLine } from "../events/bypass-event.ts";
import { AddressPortOption, validate } from "./argv.ts";
import { eventFormatArg } from "./fence-options.ts";
import { usageError } from "../exit-codes.ts";
import { openInput, readChunks } from "../sys/input-file.ts";

const Options = v.object({
  file: v.optional(v.string(), "-"),
  prefix: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"), v.maxLength(127, "is longer than any log prefix (127)"))),
  proxy: v.optional(AddressPortOption),
  stats: v.optional(v.boolean(), false),
  eventFormat: EventFormatOption,
});

/** The input file, opened; a usage error (exit 2) that says why when it cannot be read. */
function openFile(file: string): number {
  const r = openInput(file);
  if ("why" in r) throw usageError(`cannot read ${file}: ${r.why}`);
  return r.fd;
}



export default defineCommand({
  meta: { name: "parse", description: "Read kernel-log text (kmsg, dmesg, journalctl -k, syslog) and print one bypass_detect line per proxywall record" },
  args: {
    file: { type: "positional", required: false, description: "log file to read; - or nothing for standard input" },
    prefix: { type: "string", description: "count only records with this log prefix (its 29-character iptables truncation matches too); default: any proxywall sandbox" },
    proxy: { type: "string", description: "the sandbox's proxy as ADDRESS:PORT, so that TCP to its host on another port gets the wrong-port hint" },
    stats: { type: "boolean", description: "print counts of lines, records, events and skipped records to stderr at the end" },
    "event-format": eventFormatArg,
  },
  async run({ args }) {
    const opts = validate(Options, { file: args.file, prefix: args.prefix, proxy: args.proxy, stats: args.stats, eventFormat: args["event-format"] });
    const proxy = opts.proxy && { addrs: [opts.proxy.addr], port: opts.proxy.port };
    const fd = opts.file === "-" ? 0 : openFile(opts.file);
    // The JSON encoder is one very large function. JavaScriptCore's top tier (FTL) compiles it in
    // about 100 ms of CPU and some 6 MB of compiler memory, which raised the peak RSS of a long
    // parse (70 MiB against 63) and cost more CPU than the faster code saved (bench/parse.ts). It
    // still gets the DFG tier below FTL.
    noFTL(bypassEventLine.encode);
    const out = new EventWriter(1, eventFormat(opts.eventFormat), 64 * 1024);
    const parser = new KernelLogParser({
      matcher: opts.prefix === undefined ? anySandboxPrefix() : exactPrefix(opts.prefix),
      source: "parse",
      proxy,
      // json straight to bytes (the fast path); other formats through their mapping.
      onEvent: opts.eventFormat === "json" ? (e) => out.writeEncoded(e, bypassEventLine) : (e) => out.write(e),
    });
    try {
      await readChunks(fd, (b) => parser.pushBytes(b));
    } finally {
      if (fd !== 0) closeSync(fd);
    }
    parser.end();
    out.flush();
    if (opts.stats) console.error(`proxywall: parse stats ${JSON.stringify(parser.stats())}`);
    return 0;
  },
});
