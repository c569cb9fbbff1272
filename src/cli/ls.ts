// `proxywall ls`: the sandboxes on this host, live or left behind.
import { defineCommand } from "citty";
import * as v from "valibot";
import { listStates, ownerAlive, DEFAULT_STATE_DIR } from "../sandbox/state.ts";
import { validate } from "./argv.ts";
import { EXIT } from "./exit-codes.ts";

export default defineCommand({
  meta: { name: "ls", description: "List sandboxes on this host: id, owner pid, state, addresses, command" },
  args: {
    "state-dir": { type: "string", description: "directory for state files of live sandboxes", default: DEFAULT_STATE_DIR },
    json: { type: "boolean", description: "one JSON object per sandbox" },
  },
  run({ args }) {
    const o = validate(v.object({ stateDir: v.pipe(v.string(), v.regex(/^\//, "must be an absolute path")) }), { stateDir: args["state-dir"] });
    const rows = listStates(o.stateDir).flatMap((s) => (s.state ? [{ ...s.state, alive: ownerAlive(s.state) }] : []));
    if (args.json) {
      for (const r of rows) console.log(JSON.stringify(r));
      return EXIT.ok;
    }
    if (rows.length === 0) return EXIT.ok;
    const table = [["ID", "PID", "STATE", "SANDBOX", "PROXY", "CREATED", "COMMAND"]];
    for (const r of rows) {
      table.push([r.id, String(r.owner.pid), r.alive ? "live" : "stale (proxywall gc)", `${r.sandbox_ipv4} ${r.sandbox_ipv6}`, `${r.host_ipv4}:${r.proxy_port}`, r.created, r.cmd.join(" ")]);
    }
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
    return EXIT.ok;
  },
});
