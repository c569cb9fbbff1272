// `proxywall report` as a user runs it: files, standard input, "-", formats, lines that are not
// events (one warning at the end), unreadable files (exit 2, one line).
import { describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { proxywall } from "./support/privileged.ts";
import { tempDir } from "./support/temp.ts";
import { FIXTURE, FIXTURE_TEXT } from "./support/report-fixture.ts";

describe("report cli", () => {
  test("a file, each format", async () => {
    const md = await proxywall(["report", "--format", "markdown", FIXTURE]);
    expect(md.code).toBe(0);
    expect(md.stderr).toBe("");
    expect(md.stdout).toStartWith("## proxywall report\n\n**❌ 5 bypass attempts in 2 of 2 sandboxes");
    const html = await proxywall(["report", "--format=html", FIXTURE]);
    expect(html.stdout).toStartWith("<!doctype html>");
    const text = await proxywall(["report", FIXTURE]);
    expect(text.stdout).toStartWith("proxywall report: BYPASS: 5 bypass attempts");
  });

  test("standard input, with no file or with -, and a file beside it", async () => {
    const none = await proxywall(["report"], { stdin: FIXTURE_TEXT });
    expect(none.stdout).toContain("5 bypass attempts in 2 of 2 sandboxes");
    const both = await proxywall(["report", "-", FIXTURE], { stdin: FIXTURE_TEXT });
    // The same sandboxes twice: their counts add up.
    expect(both.stdout).toContain("10 bypass attempts in 2 of 2 sandboxes");
  });

  test("lines that are not events: skipped, one warning at the end", async () => {
    using dir = tempDir("pw-report-");
    const f = dir.path("mixed.jsonl");
    writeFileSync(f, `curl: (7) Failed to connect\n${FIXTURE_TEXT}{"event":"nope"}\nnot json either\n`);
    const r = await proxywall(["report", "--format", "markdown", f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("5 bypass attempts in 2 of 2 sandboxes");
    expect(r.stderr.trim().split("\n")).toEqual([`proxywall: report skipped 3 lines that are not proxywall events (first: ${f}:1: not JSON)`]);
  });

  test("an unreadable file: exit 2, one line, no output", async () => {
    using dir = tempDir("pw-report-");
    for (const [args, why] of [
      [[dir.path("missing.jsonl")], "no such file"],
      [[dir.root], "is a directory"],
      [[FIXTURE, dir.path("missing.jsonl")], "no such file"],
    ] as const) {
      const r = await proxywall(["report", ...args]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(`proxywall: cannot read ${args.at(-1)}: ${why}\n`);
    }
    if (process.getuid?.() !== 0) {
      const f = dir.path("secret.jsonl");
      writeFileSync(f, FIXTURE_TEXT);
      chmodSync(f, 0);
      expect((await proxywall(["report", f])).stderr).toContain("permission denied");
    }
  });

  test("a bad format or option: exit 2", async () => {
    const r = await proxywall(["report", "--format", "pdf", FIXTURE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("proxywall: --format: must be markdown, html or text\n");
    expect((await proxywall(["report", "--bogus", FIXTURE])).code).toBe(2);
  });

  test("empty input: a report that says nothing was found", async () => {
    const r = await proxywall(["report", "--format", "markdown"], { stdin: "" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("no proxywall events found");
  });
});
