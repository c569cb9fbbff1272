// `proxywall ls`: CMD's arguments shown as a shell would need them typed (never a raw newline or
// terminal escape), and the backend a sandbox really uses, from its own sandbox_ready line.
import { describe, expect, test } from "bun:test";
import { shellQuote } from "../src/cli/ls.ts";
import { describePrivileged, hostSnapshot, MAIN, proxywall, TEST_ARGS, TEST_STATE_DIR } from "./support/privileged.ts";

describe("shellQuote", () => {
  test("safe words stay as they are", () => {
    for (const w of ["curl", "-sS", "--noproxy", "http://198.51.100.7/", "a=b,c:d@e%f+g", "/usr/bin/python3"]) expect(shellQuote(w)).toBe(w);
  });

  test("spaces, globs and other shell syntax get single quotes", () => {
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("*")).toBe("'*'");
    expect(shellQuote("$(id); `id` | x & y > z")).toBe("'$(id); `id` | x & y > z'");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("é")).toBe("'é'");
  });

  test("newlines, terminal escapes and every control character become $'...' escapes", () => {
    expect(shellQuote("line1\nline2")).toBe("$'line1\\nline2'");
    expect(shellQuote("\x1b[2J\x1b]0;pwned\x07")).toBe("$'\\e[2J\\e]0;pwned\\x07'");
    expect(shellQuote("a\tb\rc")).toBe("$'a\\tb\\rc'");
    // C1 controls (CSI is 0x9b in 8-bit terminals) and DEL too.
    expect(shellQuote("\x9b2J\x7f")).toBe("$'\\x9b2J\\x7f'");
    // A quote or backslash beside a control character is escaped, not left to end the string.
    expect(shellQuote("it's\n\\")).toBe("$'it\\'s\\n\\\\'");
    for (let c = 0; c < 0xa0; c++) {
      if (c >= 0x20 && c < 0x7f) continue;
      expect(shellQuote(`x${String.fromCharCode(c)}y`)).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    }
  });

  test("what bash reads back from the quoted form is the argument itself", () => {
    const args = ["plain", "two words", "it's", "a\nb", "\x1b[31mred\x1b[0m", "tab\there", "back\\slash", "$HOME", "\x01\x7f"];
    const script = `for a in ${args.map(shellQuote).join(" ")}; do printf '%s\\0' "$a"; done`;
    const p = Bun.spawnSync(["bash", "-c", script], { stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(0);
    expect(p.stdout.toString().split("\0").slice(0, -1)).toEqual(args);
  });
});

/** Polls `ls --json` until the sandbox whose CMD holds `marker` and `backend` is ready; bounded. */
async function readyRow(marker: string, backend: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const r = await proxywall(["ls", "--state-dir", TEST_STATE_DIR, "--json"]);
    const rows = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
    const row = rows.find((x) => (x.cmd as string[]).includes(marker) && (x.cmd as string[]).includes(backend));
    if (row?.ready) return row;
    await Bun.sleep(100);
  }
  throw new Error(`no ready sandbox with ${marker} ${backend} in ls --json`);
}

describePrivileged("proxywall ls on live sandboxes", () => {
  test("each row shows its own backend, and CMD's hostile arguments escaped on one line", async () => {
    const before = hostSnapshot();
    const marker = `ls-test-${process.pid}`;
    const hostile = ["line1\nline2", "\x1b[2J\x1b]0;pwned\x07", "it's"];
    const runs = (["iptables", "nft"] as const).map((backend) => {
      const p = Bun.spawn([process.execPath, MAIN, "run", ...TEST_ARGS, "--backend", backend, "--", "sh", "-c", "sleep 30", marker, backend, ...hostile], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "ignore",
        env: { ...process.env, NO_COLOR: "1" },
      });
      return { backend, p };
    });
    try {
      for (const { backend } of runs) {
        const row = await readyRow(marker, backend).catch(() => null);
        expect(row).not.toBeNull();
      }
      const json = (await proxywall(["ls", "--state-dir", TEST_STATE_DIR, "--json"])).stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      const ours = json.filter((x) => x.cmd.includes(marker));
      expect(ours).toHaveLength(2);
      for (const { backend, p } of runs) {
        const row = ours.find((x) => x.cmd.includes(backend))!;
        // The truth is the sandbox_ready line the run wrote: the fence that was installed.
        expect(row.ready.backend).toBe(backend);
        expect(row.owner.pid).toBe(p.pid);
        expect(row.cmd).toEqual(["sh", "-c", "sleep 30", marker, backend, ...hostile]);
      }

      const table = await proxywall(["ls", "--state-dir", TEST_STATE_DIR]);
      expect(table.code).toBe(0);
      expect(table.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
      const lines = table.stdout.split("\n").filter(Boolean);
      expect(lines[0]).toMatch(/^ID +PID +STATE +NETNS +BACKEND +PROXY +CREATED +COMMAND$/);
      for (const { backend } of runs) {
        const row = ours.find((x) => x.cmd.includes(backend))!;
        const line = lines.filter((l) => l.startsWith(`${row.id} `));
        expect(line).toHaveLength(1);
        expect(line[0]!.split(/ +/).slice(1, 5)).toEqual([String(row.owner.pid), "live", row.netns, backend]);
        expect(line[0]).toEndWith(`  sh -c 'sleep 30' ${marker} ${backend} $'line1\\nline2' $'\\e[2J\\e]0;pwned\\x07' $'it\\'s'`);
      }
    } finally {
      for (const { p } of runs) p.kill("SIGTERM");
      const timer = setTimeout(() => runs.forEach(({ p }) => p.kill("SIGKILL")), 20_000);
      await Promise.all(runs.map(({ p }) => p.exited));
      clearTimeout(timer);
    }
    const after = await proxywall(["ls", "--state-dir", TEST_STATE_DIR, "--json"]);
    expect(after.stdout).not.toContain(marker);
    expect(hostSnapshot()).toEqual(before);
  });
});
