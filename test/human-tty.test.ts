// `run` under a pseudo-terminal (util-linux `script`): the person at the terminal gets short human
// lines and no JSON, in colour unless NO_COLOR; with --events the file gets JSON and the terminal
// still the human lines; without a terminal the JSON lines are as they always were.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { EventLine } from "../src/events/schema.ts";
import { describePrivileged, MAIN, proxywall, ROOT, TEST_ARGS } from "./support/privileged.ts";
import { tempDir } from "./support/temp.ts";

/** CMD: one direct attempt (rejected by the fence), one request the proxy's guard refuses (loopback). */
// curl's own errors go to /dev/null: on the same terminal they would interleave with proxywall's
// lines byte by byte (two writers), and the lines are what the tests read.
const CMD = ["sh", "-c", `curl -sS --noproxy '*' -m 5 http://198.51.100.7/ 2>/dev/null; curl -sS --noproxy '' -x http://127.0.0.1:3128 -m 5 -o /dev/null http://127.0.0.1:1/ 2>/dev/null; exit 0`];
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs proxywall ARGS -- CMD with a terminal as its stdin, stdout and stderr; returns what the terminal showed. */
async function underTerminal(args: string[], env: Record<string, string | undefined>): Promise<{ code: number; screen: string }> {
  const command = [process.execPath, MAIN, "run", ...TEST_ARGS, ...args, "--", ...CMD].map(q).join(" ");
  const clean = { ...process.env, NO_COLOR: undefined, GITHUB_ACTIONS: undefined, GITHUB_STEP_SUMMARY: undefined, TERM: "xterm-256color", ...env };
  const p = Bun.spawn(["script", "-qfec", command, "/dev/null"], { cwd: ROOT, env: clean as unknown as Record<string, string>, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 45_000);
  const [screen, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  clearTimeout(timer);
  return { code, screen: screen.replace(/\r\n/g, "\n") };
}

const proxywallLines = (screen: string) => screen.split("\n").filter((l) => l.replace(/\x1b\[\d+m/g, "").startsWith("proxywall: "));

describePrivileged("human lines on a terminal", () => {
  test("run at a terminal: human lines, no JSON, colour", async () => {
    const { code, screen } = await underTerminal([], {});
    expect(code).toBe(0);
    const plain = screen.replace(/\x1b\[\d+m/g, "");
    expect(plain).toMatch(/^proxywall: sandbox [0-9a-f]{8} up in \d+(\.\d)? (ms|s): proxy http:\/\/127\.0\.0\.1:3128, fence (nft|iptables), monitor \w+, detection verified/m);
    expect(plain).toMatch(/^proxywall: blocked curl\[\d+\] -> 198\.51\.100\.7:80\/tcp$/m);
    expect(plain).toMatch(/^proxywall: {3}fix: /m);
    expect(plain).toMatch(/^proxywall: refused curl\[\d+\] GET 127\.0\.0\.1:1: denied, 403/m);
    expect(plain).toMatch(/^proxywall: sandbox [0-9a-f]{8} closed after .*: CMD exited 0, proxywall exits 0$/m);
    expect(plain).toMatch(/^proxywall: {3}1 bypass attempt blocked \(kernel counters: 1 tcp, 0 udp\); by 1 program; 1 proxied request, 1 refused/m);
    expect(plain).toMatch(/^proxywall: {5}curl \(started by \w+\): 1 attempt: tcp 198\.51\.100\.7:80$/m);
    // No event line as JSON.
    expect(screen.split("\n").some((l) => l.trimStart().startsWith("{"))).toBe(false);
    expect(proxywallLines(screen).find((l) => l.includes("blocked"))).toContain("\x1b[31mblocked\x1b[39m");
  });

  test("NO_COLOR: no escape codes at all", async () => {
    const { code, screen } = await underTerminal([], { NO_COLOR: "1" });
    expect(code).toBe(0);
    expect(screen).toMatch(/^proxywall: blocked curl\[\d+\] -> 198\.51\.100\.7:80\/tcp$/m);
    expect(screen).not.toContain("\x1b");
  });

  test("--event-format json at a terminal: JSON, as asked", async () => {
    const { screen } = await underTerminal(["--event-format", "json"], { NO_COLOR: "1" });
    const events = screen.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(events.map((e) => e.event)).toContain("bypass_detect");
    expect(screen).not.toMatch(/^proxywall: blocked/m);
  });

  test("--events FILE: JSON in the file, human lines on the terminal", async () => {
    using dir = tempDir("pw-human-");
    const file = dir.path("events.jsonl");
    const { screen } = await underTerminal(["--events", file], { NO_COLOR: "1" });
    expect(screen).toMatch(/^proxywall: blocked curl\[\d+\] -> 198\.51\.100\.7:80\/tcp$/m);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    for (const l of lines) expect(v.safeParse(EventLine, JSON.parse(l)).success).toBe(true);
    expect(lines.map((l) => JSON.parse(l).event)).toEqual(expect.arrayContaining(["sandbox_ready", "bypass_detect", "proxy_connect", "sandbox_closed"]));
  });

  test("no terminal: JSON lines exactly as before, nothing human", async () => {
    const r = await proxywall(["run", ...TEST_ARGS, "--", ...CMD], { env: { GITHUB_ACTIONS: "", GITHUB_STEP_SUMMARY: "" } });
    expect(r.code).toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("{"));
    expect(lines.length).toBe(r.events.length);
    for (const l of lines) {
      // Every line a whole event of the schema, nothing added or changed by validation (valibot
      // lists an optional key last, so the comparison is of values, not of key order).
      const raw = JSON.parse(l);
      expect(v.parse(EventLine, raw)).toEqual(raw);
    }
    expect(r.events.map((e) => e.event)).toEqual(expect.arrayContaining(["sandbox_ready", "bypass_detect", "proxy_connect", "bypass_totals", "sandbox_closed"]));
    expect(r.text.some((l) => /^proxywall: (blocked|refused|sandbox)/.test(l))).toBe(false);
  });
});
