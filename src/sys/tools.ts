// Finding and running the system tools proxywall drives (ip, nft, iptables-restore, ...).
// Minimal images often lack /usr/sbin in PATH, so the usual directories are searched too.
import { accessSync, constants } from "node:fs";

const FALLBACK_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"];
const found = new Map<string, string | null>();

export function findTool(name: string): string | null {
  const cached = found.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/")), ...FALLBACK_DIRS];
  let hit: string | null = null;
  for (const dir of dirs) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      hit = `${dir}/${name}`;
      break;
    } catch {}
  }
  found.set(name, hit);
  return hit;
}

/** Children proxywall spawned itself (Bun reaps those); the PID 1 reaper leaves them alone. */
export const ownChildren = new Set<number>();

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts a tool; returns at once so the caller may switch namespaces back before awaiting. */
export function startTool(path: string, args: readonly string[], stdin?: string, env?: Record<string, string>): Promise<ToolResult> {
  const p = Bun.spawn([path, ...args], {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LC_ALL: "C", ...env },
  });
  ownChildren.add(p.pid);
  return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => {
    ownChildren.delete(p.pid);
    return { code, stdout, stderr };
  });
}

/** A line that says what went wrong, as opposed to an echo of the input or a caret marker. */
const MESSAGE = /error|fatal|fail|warning|not supported|not found|denied|not permitted|unknown|invalid|no such|cannot|can't|could not/i;

/**
 * The tool's own words about a failure: its message lines (nft prints the message, then the
 * offending input line and a row of carets; only the message and the input line say anything),
 * else its last two lines of stderr.
 */
export function toolSaid(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^[\^~\s]+$/.test(l));
  const messages = lines.filter((l) => MESSAGE.test(l));
  return [...new Set(messages.length > 0 ? messages : lines.slice(-2))].slice(0, 3).join("; ");
}

/** One line naming the tool and what it said, for error messages. */
export function toolError(what: string, r: ToolResult): string {
  const said = toolSaid(r.stderr);
  return `${what} failed (exit ${r.code})${said ? `: ${said}` : ""}`;
}
