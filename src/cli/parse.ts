// `proxywall parse [FILE|-]`: kernel-log text in, one bypass_detect JSON line per record out.
import { defineCommand } from "citty";
import * as v from "valibot";
import { existsSync, statSync } from "node:fs";
import { KernelLogParser } from "../kernel-log/log-parser.ts";
import { anySandboxPrefix, exactPrefix } from "../kernel-log/log-prefix.ts";
import { LineWriter } from "../events/line-writer.ts";
import { bypassEventLine } from "../events/bypass-event.ts";
import { AddressPortOption, validate } from "./argv.ts";
import { usageError } from "./exit-codes.ts";

const Options = v.object({
  file: v.optional(v.string(), "-"),
  prefix: v.optional(v.pipe(v.string(), v.minLength(1, "must not be empty"), v.maxLength(127, "is longer than any log prefix (127)"))),
  proxy: v.optional(AddressPortOption),
  stats: v.optional(v.boolean(), false),
});

export default defineCommand({
  meta: { name: "parse", description: "Read kernel-log text (kmsg, dmesg, journalctl -k, syslog) and print one bypass_detect line per proxywall record" },
  args: {
    file: { type: "positional", required: false, description: "log file to read; - or nothing for standard input" },
    prefix: { type: "string", description: "count only records with this log prefix (its 29-character iptables truncation matches too); default: any proxywall sandbox" },
    proxy: { type: "string", description: "the sandbox's proxy as ADDRESS:PORT, so that TCP to its host on another port gets the wrong-port hint" },
    stats: { type: "boolean", description: "print counts of lines, records, events and skipped records to stderr at the end" },
  },
  async run({ args }) {
    const opts = validate(Options, { file: args.file, prefix: args.prefix, proxy: args.proxy, stats: args.stats });
    const proxy = opts.proxy && { addrs: [opts.proxy.addr], port: opts.proxy.port };
    if (opts.file !== "-" && (!existsSync(opts.file) || statSync(opts.file).isDirectory())) {
      throw usageError(`cannot read ${opts.file}: no such file`);
    }
    const out = new LineWriter(1, 64 * 1024);
    const parser = new KernelLogParser({
      matcher: opts.prefix === undefined ? anySandboxPrefix() : exactPrefix(opts.prefix),
      source: "parse",
      proxy,
      onEvent: (e) => out.writeEncoded(e, bypassEventLine),
    });
    const input = opts.file === "-" ? Bun.stdin.stream() : Bun.file(opts.file).stream();
    const decoder = new TextDecoder("utf-8", { fatal: false });
    for await (const chunk of input) parser.push(decoder.decode(chunk, { stream: true }));
    parser.push(decoder.decode());
    parser.end();
    out.flush();
    if (opts.stats) console.error(`proxywall: parse stats ${JSON.stringify(parser.stats())}`);
    return 0;
  },
});
