// text.ts: the terminal format: the same facts, no control characters from events.
import { describe, expect, test } from "bun:test";
import { ReportAggregator } from "../src/report/aggregate.ts";
import { clean, renderText } from "../src/report/text.ts";
import type { EventLine } from "../src/events/schema.ts";
import { fixtureEvents, hostileEvents } from "./support/report-fixture.ts";

const render = (events: EventLine[]) => {
  const a = new ReportAggregator();
  for (const e of events) a.addEvent(e);
  return renderText(a.report());
};

describe("text", () => {
  test("the fixture", () => {
    const t = render(fixtureEvents());
    expect(t.split("\n")[0]).toBe("proxywall report: BYPASS: 5 bypass attempts in 2 of 2 sandboxes; 4 proxied requests (1 refused); 1 part degraded");
    expect(t).toContain("sandbox 23cc76a9: BYPASS: 3 bypass attempts rejected (3 programs); 3 proxied requests (1 refused); 1 part degraded; CMD exited 0");
    expect(t).toMatch(/curl +\(dash ← dash\) +1 +tcp 198\.51\.100\.7:8443/);
    expect(t).toMatch(/127\.0\.0\.1:1 +REFUSED connect_failed +1/);
    expect(t).toContain("privileges: CMD runs as root");
    expect(t.match(/^ {2}- TCP connection/gm)?.length).toBe(1);
  });

  test("control characters from events are shown as ?", () => {
    const t = render(hostileEvents());
    expect(t).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(clean("a\u001b[31mb\nc")).toBe("a?[31mb?c");
  });
});
