// html.ts: one self-contained page (no script, nothing to load), everything from events escaped,
// the timeline and the process tree.
import { describe, expect, test } from "bun:test";
import { ReportAggregator } from "../src/report/aggregate.ts";
import { esc, renderHtml } from "../src/report/html.ts";
import type { EventLine } from "../src/events/schema.ts";
import { fixtureEvents, hostileEvents } from "./support/report-fixture.ts";

const render = (events: EventLine[]) => {
  const a = new ReportAggregator();
  for (const e of events) a.addEvent(e);
  return renderHtml(a.report());
};

describe("html", () => {
  test("self-contained: a CSP that loads nothing, no script, no external reference", () => {
    const html = render(fixtureEvents());
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(|\bsrc=|\bhref=/i);
  });

  test("the fixture: verdict, tables, process tree, timeline", () => {
    const html = render(fixtureEvents());
    expect(html).toContain('<div class="verdict v-bypass">5 bypass attempts in 2 of 2 sandboxes; 4 proxied requests (1 refused); 1 part degraded</div>');
    expect(html.match(/<\/span>Sandbox <code>/g)?.length).toBe(2);
    expect(html).toContain("Process tree of what was blocked");
    // dash > dash > curl: a nested list three deep.
    expect(html).toMatch(/<li><span[^>]*>dash<\/span><ul>.*<li><span[^>]*>dash<\/span><ul><li><span class="blocked"[^>]*>curl<\/span>/);
    expect(html.match(/<svg /g)?.length).toBe(2);
    expect(html).toContain("<title>+");
    expect(html).toContain("connect_failed");
    expect(html).toContain("DNS example.com");
  });

  test("hostile text is escaped everywhere", () => {
    const html = render(hostileEvents());
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    // Only the tags the page itself makes.
    const tags = new Set([...html.matchAll(/<\/?([a-zA-Z0-9]+)/g)].map((m) => m[1]!.toLowerCase()));
    for (const t of tags) expect(["html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "div", "section", "span", "table", "thead", "tbody", "tr", "th", "td", "code", "br", "ul", "li", "svg", "rect", "circle", "line", "text", "p"]).toContain(t);
    expect(esc(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  });

  test("a timeline cut short says so", () => {
    const bd = fixtureEvents().find((e) => e.event === "bypass_detect")!;
    const html = render(Array.from({ length: 250 }, () => bd));
    expect(html).toContain("The first 200 of 250 attempts and requests are marked one by one");
  });
});
