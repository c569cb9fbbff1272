// Running proxywall from source (or a compiled binary) the way a user does, and reading what it
// wrote: one runner for every test, privileged or not.
import { join } from "node:path";
import { splitStderr, type Event } from "./events.ts";

export const ROOT = join(import.meta.dir, "../..");
export const MAIN = join(ROOT, "src/main.ts");

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Event lines proxywall wrote to stderr (its default event destination). */
  events: Event[];
  /** stderr lines that are not JSON: diagnostics and CMD's own stderr. */
  text: string[];
}

/**
 * Runs `proxywall ARGS` from source (or the compiled binary `bin`), with `prefix` in front (ip
 * netns exec NS, setpriv, ...); bounded by `timeoutMs`.
 */
export async function proxywall(args: string[], opts: { timeoutMs?: number; env?: Record<string, string>; stdin?: string | Uint8Array; prefix?: string[]; bin?: string } = {}): Promise<Run> {
  const p = Bun.spawn([...(opts.prefix ?? []), ...(opts.bin ? [opts.bin] : [process.execPath, MAIN]), ...args], {
    cwd: ROOT,
    stdin: opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
    stdout: "pipe",
    stderr: "pipe",
    // No colour: citty colours help text whenever NO_COLOR is unset.
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr, ...splitStderr(stderr) };
}

/** The plain form for command-line tests: stdin given whole, and only the code and both outputs. */
export async function runCli(args: string[], stdin?: string | Uint8Array): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await proxywall(args, stdin === undefined ? {} : { stdin });
  return { code, stdout, stderr };
}
