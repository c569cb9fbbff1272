// `proxywall ls`: the sandboxes on this host, live or left behind.
import { defineCommand } from "citty";
import * as v from "valibot";
import { listSandboxes, DEFAULT_STATE_DIR } from "../sandbox/state.ts";
import { validate } from "./argv.ts";
import { EXIT } from "../exit-codes.ts";

/**
 * One argument as a shell would need it typed: plain when safe, else $'...' with every control
 * character escaped, so a CMD argument can never move the cursor or forge a line in the table.
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  if (!/[\x00-\x1f\x7f-\x9f']/.test(arg)) return `'${arg}'`;
  const named: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e", "'": "\\'", "\\": "\\\\" };
  const body = arg.replace(/[\x00-\x1f\x7f-\x9f'\\]/g, (c) => named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return `$'${body}'`;
}

export default defineCommand({
  meta: { name: "ls", description: "List sandboxes on this host: id, owner pid, state, firewall backend, proxy port, command" },
  args: {
    "state-dir": { type: "string", description: "directory for state files of live sandboxes", default: DEFAULT_STATE_DIR },
    json: { type: "boolean", description: "one JSON object per sandbox" },
  },
  run({ args }) {
    const o = validate(v.object({ stateDir: v.pipe(v.string(), v.regex(/^\//, "must be an absolute path")) }), { stateDir: args["state-dir"] });
    const rows = listSandboxes(o.stateDir).flatMap((s) => (s.state ? [{ ...s.state, alive: s.alive }] : []));
    if (args.json) {
      for (const r of rows) console.log(JSON.stringify(r));
      return EXIT.ok;
    }
    if (rows.length === 0) return EXIT.ok;
    const table = [["ID", "PID", "STATE", "NETNS", "BACKEND", "PROXY", "CREATED", "COMMAND"]];
    for (const r of rows) {
      const state = !r.alive ? "stale (proxywall gc)" : r.ready ? "live" : "starting";
      const backend = r.ready ? (r.ready.backend ?? "none") : "-";
      table.push([r.id, String(r.owner.pid), state, r.netns, backend, r.ready?.proxy.url ?? "-", r.created, r.cmd.map(shellQuote).join(" ")]);
    }
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
    return EXIT.ok;
  },
});
