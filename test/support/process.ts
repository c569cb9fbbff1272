// A process whose output is collected while it runs: for tests that act on a live proxywall (wait
// for its sandbox_ready, signal it, start a monitor beside it) before they read the whole output.
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");

export interface Background {
  p: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** Everything read so far; complete once `closed`. */
  out: { stdout: string; stderr: string };
  /** Both streams have been read to their end. */
  readonly closed: boolean;
  /** Waits (bounded) for the process to end and its output to be read; SIGKILL after `ms`. */
  finish(ms?: number): Promise<number>;
}

/** Starts `cmd` in the checkout, stdin closed, stdout and stderr collected into `out` as they come. */
export function background(cmd: string[], opts: { env?: Record<string, string> } = {}): Background {
  const p = Bun.spawn(cmd, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } });
  const out = { stdout: "", stderr: "" };
  let closed = false;
  const pump = async (s: ReadableStream<Uint8Array>, k: "stdout" | "stderr") => {
    const d = new TextDecoder();
    for await (const c of s) out[k] += d.decode(c, { stream: true });
    out[k] += d.decode();
  };
  const drained = Promise.all([pump(p.stdout, "stdout"), pump(p.stderr, "stderr")]).then(() => {
    closed = true;
  });
  return {
    p,
    out,
    get closed() {
      return closed;
    },
    async finish(ms = 15_000): Promise<number> {
      const killer = setTimeout(() => p.kill("SIGKILL"), ms);
      const code = await p.exited;
      clearTimeout(killer);
      await drained;
      return code;
    },
  };
}
