// --user UID[:GID] or NAME[:GROUP], resolved against /etc/passwd and /etc/group when names are used.
import { readFileSync } from "node:fs";

function table(path: string): string[][] {
  try {
    return readFileSync(path, "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(":"));
  } catch {
    return [];
  }
}

const MAX_ID = 4294967294; // (uid_t)-1 means "no change" to setuid, so it is not a user

function id(text: string, kind: "user" | "group"): number | string {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n <= MAX_ID ? n : `${kind} id ${text} is out of range`;
  }
  const rows = table(kind === "user" ? "/etc/passwd" : "/etc/group");
  const row = rows.find((r) => r[0] === text);
  return row && /^\d+$/.test(row[2] ?? "") ? Number(row[2]) : `no such ${kind}: ${text}`;
}

/** {uid, gid}, or a one-line reason the text names no user. */
export function resolveUser(text: string): { uid: number; gid: number } | string {
  if (text.length === 0 || text.length > 256) return "must be UID[:GID] or NAME[:GROUP]";
  const [u, g, ...extra] = text.split(":");
  if (extra.length > 0 || !u) return "must be UID[:GID] or NAME[:GROUP]";
  const uid = id(u, "user");
  if (typeof uid === "string") return uid;
  if (g !== undefined) {
    const gid = id(g, "group");
    return typeof gid === "string" ? gid : { uid, gid };
  }
  // No group given: the user's primary group when /etc/passwd knows the user, else the same number.
  const row = table("/etc/passwd").find((r) => Number(r[2]) === uid && r[2] !== "");
  return { uid, gid: row && /^\d+$/.test(row[3] ?? "") ? Number(row[3]) : uid };
}
