// Diagnostics for people: always on stderr (stdout carries only data), one line per message.
// consola/core with a tiny reporter keeps start-up cheap (no tty probing, no colour library).
import { createConsola, type LogObject } from "consola/core";

function format(o: LogObject): string {
  const text = o.args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  const tag = o.type === "error" || o.type === "fatal" ? "error: " : o.type === "warn" ? "warning: " : "";
  return `proxywall: ${tag}${text}`;
}

export const diag = createConsola({
  level: process.env.PROXYWALL_DEBUG ? 4 : 3,
  reporters: [{ log: (o) => console.error(format(o)) }],
});
