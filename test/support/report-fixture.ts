// The committed event lines of two real sandboxes (test/support/report-events.ts made them), and a
// few of them made hostile: every text field an attacker could choose (an executable's name, its
// command line, a host name) full of markdown, HTML and control characters.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseEventLine } from "../../src/report/aggregate.ts";
import type { EventLine } from "../../src/events/schema.ts";

export const FIXTURE = join(import.meta.dir, "../fixtures/events-two-sandboxes.jsonl");
export const FIXTURE_TEXT = readFileSync(FIXTURE, "utf8");

/** The fixture's events, validated (a line of an older schema is read as report reads it). */
export function fixtureEvents(): EventLine[] {
  return FIXTURE_TEXT.split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const e = parseEventLine(l);
      if (typeof e === "string") throw new Error(`fixture line is not an event: ${e}`);
      return e;
    });
}

export const EVIL = "a|b`c``d\n<script>alert(1)</script>[x](http://evil.example) *em* _u_ & &amp; \u001b[31mred\r\n# h";

/** Copies of fixture events with hostile text in every field that comes from outside. */
export function hostileEvents(): EventLine[] {
  const evs = fixtureEvents();
  const out: EventLine[] = [];
  for (const e of evs) {
    const c = structuredClone(e) as any;
    if (c.event === "bypass_detect" && c.process?.resolved) {
      c.process.exe = `/tmp/${EVIL}`;
      c.process.cmdline = [EVIL, "--x", EVIL];
      c.process.ancestors = [{ pid: 2, exe: `/bin/${EVIL}` }];
      c.dst_addr = EVIL;
      c.dns_query = EVIL;
      c.hint = EVIL;
      out.push(c);
    } else if (c.event === "proxy_connect") {
      c.dst_host = EVIL;
      c.method = EVIL;
      c.error = EVIL;
      c.outcome = c.outcome === "ok" ? "ok" : c.outcome;
      out.push(c);
    } else if (c.event === "degraded") {
      c.component = EVIL;
      c.missing = EVIL;
      c.fix = EVIL;
      c.still_protected = EVIL;
      out.push(c);
    } else if (c.event === "sandbox_ready") {
      c.proxy.url = EVIL;
      out.push(c);
    } else out.push(c);
  }
  return out.map((e) => ({ ...e, sandbox: e.sandbox }));
}
