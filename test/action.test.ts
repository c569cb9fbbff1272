// action.yml: a composite action whose structure GitHub accepts, and whose shell steps, run here
// with bash as the runner would run them, install the pinned release from a local server only when
// its SHA-256 matches, then run the command under `proxywall run` with the options given.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./support/cli.ts";
import { tempDir } from "./support/temp.ts";

type Step = { id?: string; name?: string; shell?: string; run?: string; env?: Record<string, string> };
const ACTION = Bun.YAML.parse(readFileSync(join(ROOT, "action.yml"), "utf8")) as {
  name: string;
  description: string;
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
};
const VERSION = "9.8.7";
const ARCH = process.arch === "arm64" ? "arm64" : "x64";

/** A fake release binary: answers --version, and for `run` records its arguments and runs CMD. */
const FAKE = `#!/bin/sh
if [ "$1" = --version ]; then echo ${VERSION}; exit 0; fi
printf '%s\\n' "$@" > "$PW_TEST_ARGS"
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
`;
const sha256 = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

let servers: { stop(force?: boolean): void }[] = [];
afterEach(() => {
  for (const s of servers) s.stop(true);
  servers = [];
});

/** Serves the release under /v<version>/ on 127.0.0.1, recording the paths asked for. */
function serveRelease(root: string) {
  const paths: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      paths.push(path);
      const file = join(root, path);
      return existsSync(file) ? new Response(Bun.file(file)) : new Response("not found", { status: 404 });
    },
  });
  servers.push(server);
  return { url: `http://127.0.0.1:${server.port}`, paths };
}

/** `${{ inputs.x }}` and `${{ steps.s.outputs.o }}` as GitHub fills them in an env value. */
function expand(value: string, inputs: Record<string, string>, outputs: Record<string, Record<string, string>>): string {
  return value.replace(/\$\{\{\s*([\w.-]+)\s*\}\}/g, (_, expr: string) => {
    const [kind, a, b, c] = expr.split(".");
    if (kind === "inputs") return inputs[a!] ?? ACTION.inputs[a!]?.default ?? "";
    if (kind === "steps" && b === "outputs") return outputs[a!]?.[c!] ?? "";
    throw new Error(`unexpected expression ${expr}`);
  });
}

/** Runs the action's steps in order as the runner would; stops at the first failing one. */
async function runAction(inputs: Record<string, string>, dir: string) {
  const outputs: Record<string, Record<string, string>> = {};
  const log: string[] = [];
  for (const step of ACTION.runs.steps) {
    const outFile = join(dir, `output-${step.id ?? "x"}`);
    writeFileSync(outFile, "");
    const env: Record<string, string> = { PATH: process.env.PATH!, HOME: dir, RUNNER_TEMP: join(dir, "runner-temp"), GITHUB_OUTPUT: outFile, GITHUB_PATH: join(dir, "path"), PW_TEST_ARGS: join(dir, "args") };
    for (const [k, v] of Object.entries(step.env ?? {})) env[k] = expand(v, inputs, outputs);
    mkdirSync(env.RUNNER_TEMP!, { recursive: true });
    // Not spawnSync: the release server answers on this process's event loop.
    const p = Bun.spawn(["bash", "-e", "-c", step.run!], { env, cwd: dir, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    log.push(out + err);
    if (step.id) outputs[step.id] = Object.fromEntries(readFileSync(outFile, "utf8").split("\n").filter(Boolean).map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]));
    if (p.exitCode !== 0) return { code: p.exitCode, outputs, log: log.join("") };
  }
  return { code: 0, outputs, log: log.join("") };
}

describe("action.yml", () => {
  test("a composite action with the inputs it documents, every step in bash, inputs only through env", () => {
    expect(ACTION.runs.using).toBe("composite");
    expect(ACTION.name).toBe("proxywall");
    expect(ACTION.description.length).toBeGreaterThan(10);
    for (const name of ["version", "sha256", "command"]) expect(ACTION.inputs[name]?.required).toBe(true);
    expect(ACTION.inputs.args?.required).toBe(false);
    for (const [, input] of Object.entries(ACTION.inputs)) expect(input.description.length).toBeGreaterThan(0);
    expect(ACTION.outputs.path?.value).toBe("${{ steps.install.outputs.path }}");
    expect(ACTION.runs.steps.length).toBe(2);
    for (const s of ACTION.runs.steps) {
      expect(s.shell).toBe("bash");
      // An input spliced into a script is shell injection: inputs reach scripts as variables.
      expect(s.run).not.toContain("${{");
    }
  });

  test("installs the pinned release and runs the command under proxywall run with the options", async () => {
    using dir = tempDir("pw-action-");
    mkdirSync(dir.path("www", `v${VERSION}`), { recursive: true });
    writeFileSync(dir.path("www", `v${VERSION}`, `proxywall-linux-${ARCH}`), FAKE);
    const { url, paths } = serveRelease(dir.path("www"));
    const r = await runAction({ version: VERSION, sha256: sha256(FAKE), command: "echo hello from the command > out.txt; echo 'a b' >> out.txt", args: "--fail-on-bypass --allow 'x' --events ev.jsonl", "base-url": url }, dir.path());
    expect(r.code, r.log).toBe(0);
    expect(paths).toEqual([`/v${VERSION}/proxywall-linux-${ARCH}`]);
    const bin = r.outputs.install!.path!;
    expect(bin).toBe(join(dir.path("runner-temp"), `proxywall-${VERSION}`, "proxywall"));
    expect(readFileSync(bin, "utf8")).toBe(FAKE);
    expect(readFileSync(dir.path("path"), "utf8").trim()).toBe(join(dir.path("runner-temp"), `proxywall-${VERSION}`));
    // Root here, so no sudo and no --user; the options are split into words, never re-quoted or globbed.
    expect(readFileSync(dir.path("args"), "utf8").split("\n").slice(0, -1)).toEqual(["run", "--fail-on-bypass", "--allow", "'x'", "--events", "ev.jsonl", "--", "bash", "-c", "echo hello from the command > out.txt; echo 'a b' >> out.txt"]);
    expect(readFileSync(dir.path("out.txt"), "utf8")).toBe("hello from the command\na b\n");
  });

  test("a download that does not match the pinned sha256 is never run or installed", async () => {
    using dir = tempDir("pw-action-bad-");
    mkdirSync(dir.path("www", `v${VERSION}`), { recursive: true });
    writeFileSync(dir.path("www", `v${VERSION}`, `proxywall-linux-${ARCH}`), FAKE.replace("exec", "touch pwned; exec"));
    const { url } = serveRelease(dir.path("www"));
    const r = await runAction({ version: VERSION, sha256: sha256(FAKE), command: "touch ran", "base-url": url }, dir.path());
    expect(r.code).not.toBe(0);
    expect(r.log).toContain("does not match the pinned sha256");
    expect(existsSync(dir.path("runner-temp", `proxywall-${VERSION}`, "proxywall"))).toBe(false);
    expect(existsSync(dir.path("runner-temp", `proxywall-${VERSION}`, `proxywall-linux-${ARCH}.download`))).toBe(false);
    expect(existsSync(dir.path("ran"))).toBe(false);
    expect(existsSync(dir.path("pwned"))).toBe(false);
  });

  test("bad inputs stop before any download", async () => {
    using dir = tempDir("pw-action-input-");
    const { url, paths } = serveRelease(dir.path());
    for (const inputs of [{ version: "1.0; rm -rf /", sha256: sha256(FAKE) }, { version: VERSION, sha256: "abc" }, { version: VERSION, sha256: "z".repeat(64) }]) {
      const r = await runAction({ ...inputs, command: "true", "base-url": url }, dir.path());
      expect(r.code).not.toBe(0);
      expect(r.log).toContain("::error title=proxywall::");
    }
    expect(paths).toEqual([]);
  });

  test("shellcheck passes the steps", () => {
    const sc = Bun.which("shellcheck");
    if (!sc) throw new Error("shellcheck is missing (.ci/run installs it)");
    for (const s of ACTION.runs.steps) {
      const p = Bun.spawnSync([sc, "-s", "bash", "-"], { stdin: new TextEncoder().encode(s.run!) });
      expect(p.stdout.toString() + p.stderr.toString()).toBe("");
    }
  });
});
