// Where `new Worker` finds a worker module, given its path under src/. From source: that file. In
// the compiled binary every build entrypoint (build.ts lists each worker) sits under the bundle's
// root (src/) and the calling code in a chunk at that root, where a Worker path resolves against
// the root, not against the chunk (measured: the URL form fails there).
export function workerPath(fromSrc: string): string {
  return import.meta.url.startsWith("file:///$bunfs/") ? `./${fromSrc}` : new URL(`../${fromSrc}`, import.meta.url).href;
}
