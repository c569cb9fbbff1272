// Input files named on the command line (parse, report, policy learn, policy files): opened the
// one way, with one wording for why one cannot be read, so every command says it alike.
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";

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
