// Input files named on the command line (parse, report, policy learn, policy files): opened the
// one way, with one wording for why one cannot be read, so every command says it alike.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";

const OPEN_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  ENOTDIR: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "is a directory",
};

/** Why `e` (from opening or reading a file) means it cannot be read, in a few words. */
export function unreadableWhy(e: unknown): string {
  return OPEN_ERRORS[(e as NodeJS.ErrnoException).code ?? ""] ?? (e as Error).message;
}

/** An open descriptor of a readable file, or why it is not one (a directory, missing, denied). */
export function openInput(file: string): { fd: number } | { why: string } {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    return { why: unreadableWhy(e) };
  }
  // open(2) accepts a directory for reading; only read(2) would fail, with EISDIR.
  if (fstatSync(fd).isDirectory()) {
    closeSync(fd);
    return { why: "is a directory" };
  }
  return { fd };
}

/** A whole file as text, or why it cannot be read. */
export function readInputText(file: string): { text: string } | { why: string } {
  const opened = openInput(file);
  if ("why" in opened) return opened;
  try {
    return { text: readFileSync(opened.fd, "utf8") };
  } catch (e) {
    return { why: unreadableWhy(e) };
  } finally {
    closeSync(opened.fd);
  }
}

/**
 * Bytes per read: what a pipe holds by default. Reads of 16 KiB to 1 MiB from a file measured the
 * same within the noise (parse); the buffer is all the input a reader holds at once.
 */
const CHUNK_BYTES = 64 * 1024;

/**
 * Reads `fd` to its end into one reused buffer, with blocking reads, handing each chunk to `push`
 * (which must use it before it returns). A stream would allocate a new chunk per read, and Bun's
 * file stream polls the descriptor with epoll, which refuses /dev/null and regular files given as
 * standard input (EPERM). Read errors are thrown as they come.
 */
export async function readChunks(fd: number, push: (bytes: Uint8Array) => void): Promise<void> {
  const buf = new Uint8Array(CHUNK_BYTES);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EINTR") continue;
      // A non-blocking standard input (its O_NONBLOCK is shared with whoever set it): wait for
      // data through Bun's event loop for the rest, with a chunk per read.
      if (code !== "EAGAIN" || fd !== 0) throw e;
      for await (const chunk of Bun.stdin.stream()) push(chunk);
      return;
    }
    if (n === 0) return;
    push(buf.subarray(0, n));
  }
}
