// Help text: `run --help` shows the command that follows "--"; a --help after "--" is CMD's. No root.
import { describe, expect, test } from "bun:test";
import { runCli } from "./support/cli.ts";

describe("run --help", () => {
  for (const flag of ["--help", "-h"]) {
    test(`run ${flag} shows "-- CMD [ARGS...]" in its usage line, on stdout, exit 0`, async () => {
      const r = await runCli(["run", flag]);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      const usage = r.stdout.split("\n").filter((l) => l.startsWith("USAGE"));
      expect(usage).toEqual(["USAGE proxywall run [OPTIONS] -- CMD [ARGS...]"]);
      expect(r.stdout).toContain("--dry-run");
    });
  }

  test("with options before it, the same usage line", async () => {
    const r = await runCli(["run", "--dry-run", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("USAGE proxywall run [OPTIONS] -- CMD [ARGS...]\n");
  });

  test("a --help after -- belongs to CMD: run --dry-run -- curl --help prints the plan, not help", async () => {
    const r = await runCli(["run", "--dry-run", "--", "curl", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("# proxywall run --dry-run: sandbox ");
    expect(r.stdout).not.toContain("USAGE");
  });

  test("commands that take no CMD keep citty's own usage line", async () => {
    const parse = await runCli(["parse", "--help"]);
    expect(parse.stdout).toContain("USAGE proxywall parse [OPTIONS] [FILE]\n");
    const ls = await runCli(["ls", "--help"]);
    expect(ls.stdout.split("\n").find((l) => l.startsWith("USAGE"))).toBe("USAGE proxywall ls [OPTIONS] ");
    for (const r of [parse, ls]) expect(r.stdout).not.toContain("CMD [ARGS");
  });

  test("the top-level help lists run, and exits 0", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ +run +Run CMD in a network namespace/m);
  });
});

describe("options that are gone", () => {
  // --pool went with the address pool (the sandbox has no host side any more): a usage error.
  test("run --pool 127.210.0.0/16 is an unknown option, exit 2, and CMD never runs", async () => {
    const r = await runCli(["run", "--pool", "127.210.0.0/16", "--", "sh", "-c", "echo CMD-RAN"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("proxywall: unknown option --pool\n");
  });
});
