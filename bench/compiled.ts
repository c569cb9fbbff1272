// The compiled proxywall a benchmark measures: dist/'s binary only when it is newer than every
// file under src/ (an older one may still build a host side, from before commit 6c4e707, and
// would measure other code), otherwise one built from this checkout with build.ts.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, FROM_SOURCE, ROOT, type Proxywall } from "./support.ts";

/** build.ts's target for this machine (glibc). */
export const DIST_TARGET = `linux-${process.arch === "arm64" ? "arm64" : "x64"}`;
/** The compiled binary for this machine in dist/. */
export const DIST_BINARY = join(ROOT, `dist/proxywall-${DIST_TARGET}`);

/** The newest modification time of any file below `dir` (src/ by default). */
export function newestMtime(dir = join(ROOT, "src")): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function buildInto(outdir: string): void {
  const args = [BUN, "build.ts", "--target", DIST_TARGET, "--outdir", outdir];
  console.error(`bench: building: ${args.slice(1).join(" ")}`);
  const b = Bun.spawnSync(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 10 * 60_000 });
  if (b.exitCode !== 0) throw new Error(`bun build.ts --target ${DIST_TARGET} failed (exit ${b.exitCode}): ${b.stderr.toString().trim()}`);
}

export interface Compiled {
  /** The binary to run, or null (none fresh, and no build asked for). */
  pw: Proxywall | null;
  /** What the benchmark should say about it (built where, or why it was not run). */
  note: string;
  /** Removes a binary built into a temporary directory. */
  cleanup(): void;
}

/**
 * The compiled proxywall: dist/'s binary when it is newer than src/. Otherwise, with `build`, a
 * missing one is built into dist/, and a stale one is left alone and a fresh one built into a
 * temporary directory (removed by cleanup()); without `build`, none.
 */
export function compiledProxywall(build: boolean): Compiled {
  const none = () => {};
  const name = `dist/proxywall-${DIST_TARGET}`;
  const missing = !existsSync(DIST_BINARY);
  if (!missing && statSync(DIST_BINARY).mtimeMs > newestMtime()) return { pw: { name, argv: [DIST_BINARY] }, note: `${name} (newer than src/)`, cleanup: none };
  const why = missing ? `${name} is missing` : `${name} is older than src/`;
  if (!build) return { pw: null, note: `${why}: not run; pass --compiled to build one`, cleanup: none };
  if (missing) {
    buildInto(join(ROOT, "dist"));
    return { pw: { name, argv: [DIST_BINARY] }, note: `${why}: built it from this checkout`, cleanup: none };
  }
  const dir = mkdtempSync(join(tmpdir(), "proxywall-bench-build-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    buildInto(dir);
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    pw: { name: `compiled (fresh proxywall-${DIST_TARGET})`, argv: [join(dir, `proxywall-${DIST_TARGET}`)] },
    note: `${why}: built a fresh one from this checkout into ${dir} (removed afterwards)`,
    cleanup,
  };
}

/** What a live benchmark runs: with --compiled the compiled proxywall (built when needed), else proxywall from source. */
export function proxywallUnderTest(): { pw: Proxywall; note: string; cleanup(): void } {
  if (!process.argv.includes("--compiled")) return { pw: FROM_SOURCE, note: "", cleanup: () => {} };
  const c = compiledProxywall(true);
  return { pw: c.pw!, note: c.note, cleanup: c.cleanup };
}
