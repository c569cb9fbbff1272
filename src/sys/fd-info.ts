// What /proc says of one of this process's descriptors, for `--events fd:N` and the standard
// descriptors: shared by the sink (src/events/sink.ts) and the JIT re-execution (jit-tiers.ts),
// which must carry a closed stderr over to the new image.
import { fstatSync, readFileSync, readlinkSync } from "node:fs";

export interface FdInfo {
  /** /proc/self/fd/N's target ("" when /proc cannot say); null when the descriptor is not open. */
  link: string | null;
  /** The open flags (octal in fdinfo); null when unknown. */
  flags: number | null;
}

export function describeFd(fd: number): FdInfo {
  try {
    fstatSync(fd);
  } catch {
    return { link: null, flags: null };
  }
  let link = "";
  let flags: number | null = null;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
    const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
    if (m) flags = parseInt(m[1]!, 8);
  } catch {
    // No /proc: what fstat said (open) is all there is to know.
  }
  return { link, flags };
}

/**
 * A standard descriptor the caller had closed: Bun opens /dev/null in its place, close-on-exec
 * (a caller's own `2>/dev/null` is never close-on-exec: descriptors 0-2 are inherited without it).
 */
export function closedByCaller(fd: number, { link, flags }: FdInfo): boolean {
  const O_CLOEXEC = 0o2000000;
  return fd <= 2 && link === "/dev/null" && flags !== null && (flags & O_CLOEXEC) !== 0;
}
