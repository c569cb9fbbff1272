// `proxywall report` on event files that `proxywall run` wrote: two sandboxes at once (bypasses over
// TCP and UDP, DNS with a name, proxied requests and a tunnel to a listener on loopback, a request
// the proxy could not carry out, a degraded part), mixed in one file. The markdown's tables are
// valid GFM; the HTML page opens in headless Chromium without a console error and without asking
// the network for anything, and a screenshot is taken (of the committed fixture's page,
// PROXYWALL_UPDATE_DOCS=1 also copies it to docs/report.png, the README's). Without Chromium the page checks fail in CI and are skipped
// elsewhere; the runs need root (describePrivileged).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describePrivileged, proxywall, ROOT, splitStderr } from "./support/privileged.ts";
import { CHROMIUM, checkPage } from "./support/chromium.ts";
import { tableProblems } from "./support/gfm.ts";
import { recordTwoSandboxes } from "./support/report-events.ts";
import { FIXTURE } from "./support/report-fixture.ts";
import { tempDir, type TempDir } from "./support/temp.ts";

setDefaultTimeout(60_000);

/** The report's HTML opened in Chromium: no errors, no request, a screenshot; its path. */
async function openInBrowser(dir: TempDir, events: string, name: string): Promise<string> {
  const html = dir.path(`${name}.html`);
  const r = await proxywall(["report", "--format", "html", events]);
  expect(r.code).toBe(0);
  writeFileSync(html, r.stdout);
  const page = await checkPage(html, dir.path(`profile-${name}`), { width: 1280, height: 900 });
  expect(page.errors).toEqual([]);
  expect(page.requests).toEqual([]);
  expect(page.title).toStartWith("proxywall report: ");
  // A PNG, and not a blank one: a few kilobytes at least.
  expect([...page.png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(page.png.length).toBeGreaterThan(10_000);
  const png = dir.path(`${name}.png`);
  writeFileSync(png, page.png);
  return png;
}

function describeBrowser(name: string, fn: () => void): void {
  if (CHROMIUM) return describe(name, fn);
  if (process.env.CI) {
    return describe(name, () => {
      test("chromium is installed (required in CI)", () => {
        expect(CHROMIUM).not.toBeNull();
      });
    });
  }
  describe.skip(`${name} (needs chromium)`, fn);
}

describeBrowser("report html in headless chromium", () => {
  test("the committed fixture: opens clean, loads nothing, screenshot", async () => {
    using dir = tempDir("pw-report-browser-");
    const png = await openInBrowser(dir, FIXTURE, "fixture");
    if (process.env.PROXYWALL_UPDATE_DOCS === "1") copyFileSync(png, join(ROOT, "docs/report.png"));
  });
});

describePrivileged("report on real runs", () => {
  test("two sandboxes mixed in one file: markdown, html, text", async () => {
    using dir = tempDir("pw-report-real-");
    const events = dir.path("events.jsonl");
    await recordTwoSandboxes(events);
    appendFileSync(events, "a line that is not an event\n");
    const written = splitStderr(readFileSync(events, "utf8")).events;
    const ready = written.filter((e) => e.event === "sandbox_ready").map((e) => e.sandbox as string);
    expect(ready.length).toBe(2);

    const md = await proxywall(["report", "--format", "markdown", events]);
    expect(md.code).toBe(0);
    expect(md.stderr).toContain("proxywall: report skipped 1 line that is not proxywall events");
    expect(tableProblems(md.stdout)).toEqual([]);
    for (const id of ready) expect(md.stdout).toContain(`Sandbox \`${id}\``);
    // What the proxy decides about loopback (allowed, denied by a guard, failed to connect) is the
    // proxy's business; the report must show four requests, each with its outcome.
    expect(md.stdout).toMatch(/\*\*❌ 5 bypass attempts in 2 of 2 sandboxes; 4 proxied requests( \(\d refused\))?; 1 part degraded\*\*/);
    expect(md.stdout).toContain("`udp 198.51.100.7:53 (DNS example.com)`");
    expect(md.stdout).toContain("`udp 198.51.100.7:123`");
    // TCP attempts are held until their process is named: always attributed, with ancestors.
    expect(md.stdout).toContain("| `curl` | `dash ← dash` | 1 | `tcp 198.51.100.7:8443` |");
    expect(md.stdout).toContain("| `curl` | `dash` | 1 | `tcp 198.51.100.7:8080` |");
    expect(md.stdout).toMatch(/\| `127\.0\.0\.1:1` \| ⛔ `\w+`/);
    expect(md.stdout).toContain("| `privileges` |");

    const text = await proxywall(["report", events]);
    expect(text.stdout).toStartWith("proxywall report: BYPASS: 5 bypass attempts");

    if (CHROMIUM || process.env.CI) await openInBrowser(dir, events, "real");
  });
});
