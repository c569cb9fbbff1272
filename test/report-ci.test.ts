// CI without a service: the markdown report appended to GITHUB_STEP_SUMMARY at exit, and one
// `::warning` per distinct bypass (program and destination) with GITHUB_ACTIONS=true; the
// workflow-command escaping; and a real run inside a job's environment.
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { EventWriter } from "../src/events/event-writer.ts";
import { ReportAggregator } from "../src/report/aggregate.ts";
import { renderMarkdown } from "../src/report/markdown.ts";
import { annotations, escapeData, escapeProperty, startCiSummary } from "../src/sandbox/ci-summary.ts";
import { describePrivileged, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { fixtureEvents } from "./support/report-fixture.ts";
import { tempDir } from "./support/temp.ts";

const reportOf = (events = fixtureEvents()) => {
  const a = new ReportAggregator();
  for (const e of events) a.addEvent(e);
  return a.report();
};

describe("GitHub annotations", () => {
  test("escaping follows the workflow command rules", () => {
    expect(escapeData("100% a\r\nb")).toBe("100%25 a%0D%0Ab");
    expect(escapeProperty("a: b, c%\n")).toBe("a%3A b%2C c%25%0A");
  });

  test("one per distinct program and destination, however often it was tried", () => {
    const events = fixtureEvents();
    const curl80 = events.find((e) => e.event === "bypass_detect" && e.dst_port === 80)!;
    const lines = annotations(reportOf([...events, { ...curl80, ts: curl80.ts }, { ...curl80 }]));
    const pairs = new Set(events.flatMap((e) => (e.event === "bypass_detect" ? [`${e.dst_addr}:${e.dst_port}`] : [])));
    expect(lines.length).toBe(pairs.size);
    for (const l of lines) expect(l).toMatch(/^::warning title=proxywall%3A [^:]+ bypassed the proxy::/);
    expect(lines[0]).toMatch(/^::warning title=proxywall%3A curl bypassed the proxy::curl tried tcp 198\.51\.100\.7:80 directly, 3 times; the sandbox rejected it\. Fix: /);
    for (const l of lines) expect(l).not.toMatch(/[\r\n]/);
  });

  test("bounded, with the rest counted", () => {
    const events = fixtureEvents();
    const b = events.find((e) => e.event === "bypass_detect" && e.process?.resolved)! as any;
    const many = Array.from({ length: 30 }, (_, i) => ({ ...b, process: { ...b.process, exe: `/usr/bin/tool${i}` } }));
    const lines = annotations(reportOf(many), 20);
    expect(lines.length).toBe(21);
    expect(lines[20]).toContain("10 more program and destination pairs");
  });
});

describe("step summary from the run's own events", () => {
  test("appends the markdown report and writes the annotations at the end", () => {
    using dir = tempDir("pw-ci-");
    const summary = dir.path("summary.md");
    writeFileSync(summary, "before\n");
    const w = new EventWriter(openSync(dir.path("events.jsonl"), "a"));
    const ci = startCiSummary(w, { GITHUB_STEP_SUMMARY: summary })!;
    for (const e of fixtureEvents()) w.write(e);
    ci.end();
    closeSync(w.fd);
    expect(readFileSync(summary, "utf8")).toBe(`before\n${renderMarkdown(reportOf())}\n`);
    expect(startCiSummary(w, {})).toBeNull();
  });
});

describePrivileged("run in a GitHub Actions job", () => {
  test("GITHUB_STEP_SUMMARY gets the report; each distinct bypass one annotation", async () => {
    using dir = tempDir("pw-ci-run-");
    const summary = dir.path("summary.md");
    const events = dir.path("events.jsonl");
    const r = await proxywall(["run", ...TEST_ARGS, "--events", events, "--", "sh", "-c", "for i in 1 2 3; do curl -sS --noproxy '*' -m 5 http://198.51.100.7/; done; curl -sS --noproxy '*' -m 5 http://198.51.100.7:8080/; exit 0"], {
      env: { GITHUB_ACTIONS: "true", GITHUB_STEP_SUMMARY: summary },
    });
    expect(r.code).toBe(0);
    const warnings = r.stdout.split("\n").filter((l) => l.startsWith("::warning"));
    expect(warnings.length).toBe(2);
    expect(warnings[0]).toMatch(/^::warning title=proxywall%3A curl bypassed the proxy::curl tried tcp 198\.51\.100\.7:80 directly, 3 times; the sandbox rejected it\. Fix: /);
    expect(warnings[1]).toContain("curl tried tcp 198.51.100.7:8080 directly, once");
    const md = readFileSync(summary, "utf8");
    expect(md).toStartWith("## proxywall report\n");
    expect(md).toContain("4 bypass attempts in 1 of 1 sandbox");
    expect(md).toContain("`tcp 198.51.100.7:80` ×3");
    // The event lines are unchanged by it.
    expect(readFileSync(events, "utf8").split("\n").filter((l) => l.includes('"event":"bypass_detect"')).length).toBe(4);
  });
});
