// The human format (--event-format human) on the fixture's real lines: one line when up, one per
// bypass with the fix once per kind, one per refused request, a closing summary with the exact
// totals and the exit status; colour only when asked; nothing from an event can reach the
// terminal as a control character. And the rule that picks the format.
import { describe, expect, test } from "bun:test";
import { HumanFormat } from "../src/events/formats/human.ts";
import { loadEventFormat } from "../src/events/formats/index.ts";
import { chooseOutput, colorFor } from "../src/events/human.ts";
import type { EventLine } from "../src/events/schema.ts";
import { fixtureEvents, hostileEvents } from "./support/report-fixture.ts";

const ESC = "\x1b";

function render(events: EventLine[], color = false): string[] {
  const f = new HumanFormat({ color });
  return events.map((e) => f.line(e)).filter((l) => l !== "").flatMap((l) => l.split("\n"));
}

describe("human format", () => {
  const events = fixtureEvents();
  const sandboxOf = (id: string) => events.filter((e) => e.sandbox === id);

  test("one sandbox, as a person sees it", () => {
    const lines = render(sandboxOf("23cc76a9"));
    expect(lines[0]).toBe("proxywall: degraded privileges: CMD runs as root and keeps CAP_NET_ADMIN inside its namespace, so it could delete the rules; fix: pass --user UID[:GID] to run CMD without privileges");
    expect(lines[1]).toMatch(/^proxywall: sandbox 23cc76a9 up in \d+ ms: proxy http:\/\/127\.0\.0\.1:3128, fence iptables, monitor nflog, detection verified, degraded: privileges$/);
    expect(lines).toContain("proxywall: blocked curl[" + (events.find((e) => e.event === "bypass_detect" && e.sandbox === "23cc76a9" && e.dst_port === 80) as any).process.pid + "] -> 198.51.100.7:80/tcp");
    expect(lines.some((l) => /^proxywall: blocked .* -> 198\.51\.100\.7:123\/udp$/.test(l))).toBe(true);
    expect(lines.some((l) => /^proxywall: refused .* GET 127\.0\.0\.1:1: connect_failed, 502/.test(l))).toBe(true);
    // Allowed requests and periodic summaries say nothing.
    expect(lines.some((l) => / CONNECT 127\.0\.0\.1/.test(l))).toBe(false);
    expect(lines.some((l) => l.includes("bypass_summary"))).toBe(false);
    // The closing summary: status, exact totals from the kernel counters, programs and destinations.
    const close = lines.findIndex((l) => l.startsWith("proxywall: sandbox 23cc76a9 closed after"));
    expect(lines[close]).toMatch(/closed after \d+ ms: CMD exited 0, proxywall exits 0$/);
    expect(lines[close + 1]).toBe("proxywall:   3 bypass attempts blocked (kernel counters: 2 tcp, 1 udp); by 3 programs; 3 proxied requests, 1 refused; degraded: privileges");
    expect(lines.slice(close + 2)).toContain("proxywall:     curl (started by dash): 1 attempt: tcp 198.51.100.7:80");
    expect(lines.slice(close + 2)).toContain("proxywall:     curl (started by dash ← dash): 1 attempt: tcp 198.51.100.7:8443");
    // No JSON anywhere.
    expect(lines.some((l) => l.includes("{"))).toBe(false);
  });

  test("the fix once per kind of mistake, not on every line", () => {
    const lines = render(events);
    const fixes = lines.filter((l) => l.startsWith("proxywall:   fix: "));
    const hints = new Set(events.flatMap((e) => (e.event === "bypass_detect" ? [e.hint] : [])));
    expect(fixes.length).toBe(hints.size);
    expect(new Set(fixes).size).toBe(fixes.length);
    expect(lines.filter((l) => l.startsWith("proxywall: blocked")).length).toBe(events.filter((e) => e.event === "bypass_detect").length);
  });

  test("colour only when asked, and only around the keyword", () => {
    const plain = render(events, false);
    const coloured = render(events, true);
    expect(plain.join("\n")).not.toContain(ESC);
    expect(coloured.find((l) => l.includes("blocked"))).toMatch(/^proxywall: \x1b\[31mblocked\x1b\[39m /);
    expect(coloured.map((l) => l.replace(/\x1b\[\d+m/g, ""))).toEqual(plain);
  });

  test("hostile text cannot reach the terminal as control characters", () => {
    const lines = render(hostileEvents(), true);
    for (const l of lines) expect(l.replace(/\x1b\[\d+m/g, "")).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(lines.length).toBeGreaterThan(5);
  });

  test("a monitor's summary comes with its final totals (it has no sandbox_closed)", () => {
    const own = sandboxOf("b2617656").filter((e) => e.event !== "sandbox_ready" && e.event !== "sandbox_closed");
    const lines = render(own.map((e) => (e.event === "bypass_detect" ? { ...e, action: "observe" as const } : e)));
    expect(lines.filter((l) => l.startsWith("proxywall: seen")).length).toBe(2);
    expect(lines).toContain("proxywall: sandbox b2617656 stopped");
    expect(lines.some((l) => /^proxywall: {3}2 bypass attempts seen \(kernel counters: 1 tcp, 1 udp\)/.test(l))).toBe(true);
  });

  test("the human format is loaded only when asked for, and has no JSON Schema", async () => {
    const f = await loadEventFormat("human", { color: false });
    expect(f.name).toBe("human");
    expect(f.schema()).toBeNull();
    expect((await loadEventFormat("json", { color: true })).line(events[0]!)).toBe(JSON.stringify(events[0]));
  });
});

describe("which format, where", () => {
  const tty = (...fds: number[]) => (fd: number) => fds.includes(fd);

  test("run: stderr a terminal and no --events: human; not a terminal: json", () => {
    expect(chooseOutput(undefined, undefined, 2, tty(2))).toEqual({ format: "human", teeToStderr: false });
    expect(chooseOutput(undefined, undefined, 2, tty())).toEqual({ format: "json", teeToStderr: false });
    expect(chooseOutput(undefined, undefined, 2, tty(1))).toEqual({ format: "json", teeToStderr: false });
  });

  test("--event-format overrides the choice", () => {
    expect(chooseOutput("json", undefined, 2, tty(2))).toEqual({ format: "json", teeToStderr: false });
    expect(chooseOutput("human", undefined, 2, tty())).toEqual({ format: "human", teeToStderr: false });
    expect(chooseOutput("ocsf", undefined, 2, tty(2))).toEqual({ format: "ocsf", teeToStderr: false });
  });

  test("--events stays JSON; the terminal still gets the human lines", () => {
    expect(chooseOutput(undefined, "/var/log/x.jsonl", 2, tty(2))).toEqual({ format: "json", teeToStderr: true });
    expect(chooseOutput(undefined, "/var/log/x.jsonl", 2, tty())).toEqual({ format: "json", teeToStderr: false });
    expect(chooseOutput("ecs", "fd:3", 2, tty(2, 3))).toEqual({ format: "ecs", teeToStderr: true });
    expect(chooseOutput("human", "/var/log/x.txt", 2, tty(2))).toEqual({ format: "human", teeToStderr: false });
    // Lines already on stderr are not written there twice.
    expect(chooseOutput(undefined, "fd:2", 2, tty(2))).toEqual({ format: "json", teeToStderr: false });
  });

  test("monitor: stdout is its destination", () => {
    expect(chooseOutput(undefined, undefined, 1, tty(1, 2))).toEqual({ format: "human", teeToStderr: false });
    expect(chooseOutput(undefined, undefined, 1, tty(2))).toEqual({ format: "json", teeToStderr: true });
    expect(chooseOutput(undefined, undefined, 1, tty())).toEqual({ format: "json", teeToStderr: false });
  });

  test("colour: a terminal, NO_COLOR unset or empty, TERM not dumb", () => {
    const yes = () => true;
    expect(colorFor(2, {}, yes)).toBe(true);
    expect(colorFor(2, { NO_COLOR: "" }, yes)).toBe(true);
    expect(colorFor(2, { NO_COLOR: "1" }, yes)).toBe(false);
    expect(colorFor(2, { TERM: "dumb" }, yes)).toBe(false);
    expect(colorFor(2, {}, () => false)).toBe(false);
  });
});
