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
export function startTool(path: string, args: readonly string[], stdin?: string): Promise<ToolResult> {
  const p = Bun.spawn([path, ...args], {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LC_ALL: "C" },
  });
  ownChildren.add(p.pid);
  return Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]).then(([stdout, stderr, code]) => {
    ownChildren.delete(p.pid);
    return { code, stdout, stderr };
  });
}

/** One line naming the tool and what it said, for error messages. */
export function toolError(what: string, r: ToolResult): string {
  const said = r.stderr.trim().split("\n").filter(Boolean).slice(-2).join("; ");
  return `${what} failed (exit ${r.code})${said ? `: ${said}` : ""}`;
}
