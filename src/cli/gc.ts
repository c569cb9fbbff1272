// `proxywall gc`: removes sandboxes whose owner is gone (after a SIGKILL or a crash).
import { defineCommand } from "citty";
import * as v from "valibot";
import { collectGarbage } from "../sandbox/gc.ts";
import { DEFAULT_STATE_DIR, removeStateDirIfEmpty } from "../sandbox/state.ts";
import { validate } from "./argv.ts";
import { EXIT } from "../exit-codes.ts";

export default defineCommand({
  meta: { name: "gc", description: "Remove sandboxes (namespace with the processes still in it, state and lock files) whose proxywall is gone" },
  args: {
    "state-dir": { type: "string", description: "directory for state files of live sandboxes", default: DEFAULT_STATE_DIR },
  },
  async run({ args }) {
    const o = validate(v.object({ stateDir: v.pipe(v.string(), v.regex(/^\//, "must be an absolute path")) }), { stateDir: args["state-dir"] });
    const report = await collectGarbage(o.stateDir);
    removeStateDirIfEmpty(o.stateDir);
    for (const r of report.removed) {
      const killed = r.killed === 0 ? "" : ` (killed ${r.killed} process${r.killed === 1 ? "" : "es"} still inside)`;
      console.log(`removed ${r.id}${killed}`);
    }
    for (const p of report.problems) console.error(`proxywall: ${p}`);
    return report.problems.length > 0 ? EXIT.failure : EXIT.ok;
  },
});
