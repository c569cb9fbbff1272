// Temporary directories for tests and benchmarks: made fresh under the system temp dir, removed
// with everything in them. `using dir = tempDir("x-")` removes it at the end of the block.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TempDir {
  /** The directory's absolute path. */
  readonly root: string;
  /** A path inside the directory. */
  path(...parts: string[]): string;
  /** Removes the directory and everything in it; again is harmless. */
  remove(): void;
  [Symbol.dispose](): void;
}

/** A new empty directory named `prefix` plus six random characters, under the system temp dir. */
export function tempDir(prefix: string): TempDir {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(root, { recursive: true, force: true });
  return { root, path: (...parts) => join(root, ...parts), remove, [Symbol.dispose]: remove };
}
