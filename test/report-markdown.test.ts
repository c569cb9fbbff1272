// markdown.ts: valid GFM tables (every row as many cells as its header, a delimiter row, balanced
// code spans), and nothing from an event that markdown or HTML could act on.
import { describe, expect, test } from "bun:test";
import { ReportAggregator, type Report } from "../src/report/aggregate.ts";
import { code, MAX_ROWS, renderMarkdown, text } from "../src/report/markdown.ts";
import type { EventLine } from "../src/events/schema.ts";
import { gfmTables, tableProblems, withoutCodeSpans } from "./support/gfm.ts";
import { fixtureEvents, hostileEvents } from "./support/report-fixture.ts";

function report(events: EventLine[]): Report {
  const a = new ReportAggregator();
  for (const e of events) a.addEvent(e);
  return a.report();
}

describe("markdown", () => {
  test("the fixture: verdict, one section per sandbox, programs, proxy, degraded, fixes once", () => {
    const md = renderMarkdown(report(fixtureEvents()));
    expect(md).toContain("**❌ 5 bypass attempts in 2 of 2 sandboxes; 4 proxied requests (1 refused); 1 part degraded**");
    expect(md.match(/^### .*Sandbox /gm)?.length).toBe(2);
    expect(md).toContain("| `curl` | `dash ← dash` | 1 | `tcp 198.51.100.7:8443` |");
    expect(md).toContain("`udp 198.51.100.7:53 (DNS example.com)`");
    expect(md).toContain("⛔ `connect_failed`");
    expect(md).toContain("| `privileges` |");
    expect(md.match(/^- TCP connection that ignored the proxy/gm)?.length).toBe(1);
    expect(tableProblems(md)).toEqual([]);
    const tables = gfmTables(md);
    expect(tables.map((t) => t.header[0])).toEqual(["Program", "Destination", "Program", "Destination", "Part"]);
  });

  test("hostile text stays inside its cell and does nothing", () => {
    const md = renderMarkdown(report(hostileEvents()));
    expect(tableProblems(md)).toEqual([]);
    expect(gfmTables(md).length).toBe(5);
    // Outside code spans, no raw HTML, link, or line that starts a block.
    const outside = md.split("\n").filter((l) => /^(\| |- )/.test(l)).map(withoutCodeSpans).join("\n");
    // Each of these only ever appears escaped (after a backslash), if at all.
    for (const m of outside.matchAll(/[<>[\]*_&]|:\/\//g)) expect(outside[m.index - 1]).toBe("\\");
    expect(outside).not.toContain("\u001b");
    for (const line of md.split("\n")) expect(line).not.toMatch(/^# h/);
  });

  test("code spans: pipes escaped, a fence longer than any backtick run, one line", () => {
    expect(code("a|b")).toBe("`a\\|b`");
    expect(code("a`b")).toBe("``a`b``");
    expect(code("`x")).toBe("`` `x ``");
    expect(code("a\nb")).toBe("`a b`");
    expect(code("")).toBe("");
  });

  test("text: markup escaped, links and blocks defused", () => {
    expect(text("*a* _b_ [c](d) <e> `f` | & ~g~")).toBe("\\*a\\* \\_b\\_ \\[c\\](d) \\<e\\> \\`f\\` \\| \\& \\~g\\~");
    expect(text("see http://x.example and www.y.example, a@b.example")).toBe("see http\\://x.example and www\\.y.example, a\\@b.example");
    expect(text("# heading")).toBe("\\# heading");
    expect(text("1. item")).toBe("\\1. item");
    expect(text("a\r\nb")).toBe("a b");
  });

  test("long tables are cut, with a count of the rest", () => {
    const bd = fixtureEvents().find((e) => e.event === "bypass_detect")! as Extract<EventLine, { event: "bypass_detect" }>;
    const p = bd.process as Extract<typeof bd.process, { resolved: true }>;
    const events = Array.from({ length: MAX_ROWS + 7 }, (_, i) => ({ ...bd, process: { ...p, exe: `/bin/p${i}` } }));
    const md = renderMarkdown(report(events));
    expect(gfmTables(md)[0]!.rows.length).toBe(MAX_ROWS);
    expect(md).toContain("…and 7 more rows");
    expect(tableProblems(md)).toEqual([]);
  });

  test("no events", () => {
    expect(renderMarkdown(report([]))).toContain("⚠️ no proxywall events found");
  });
});
