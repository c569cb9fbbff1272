// What the three report formats say alike: verdicts, names of programs and destinations, sizes and
// durations, and the process tree of what was blocked. Plain strings here; each format escapes.
import { hostPort, type Dest, type Program, type Report, type SandboxSummary } from "./aggregate.ts";

export type Level = "bypass" | "warn" | "ok";

export interface Verdict {
  level: Level;
  /** One sentence, no markup: "3 bypass attempts by 2 programs". */
  text: string;
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;

export const baseName = (path: string | null) => (path === null ? "?" : path.replace(/ \(deleted\)$/, "").split("/").pop() || path);

/** The program's name: the executable's base name, or why there is none. */
export function programName(p: Program): string {
  if (p.exe !== null) return baseName(p.exe);
  return p.why === null ? "(unknown)" : `(unknown: ${p.why})`;
}

/** Its parents, nearest first, as base names: at most `max`, then how many more. */
export function ancestry(p: Program, max = 3): string {
  const names = p.ancestors.map(baseName);
  if (names.length <= max) return names.join(" ← ");
  return `${names.slice(0, max).join(" ← ")} ← … (${names.length - max} more)`;
}

export function destName(d: Dest): string {
  if (d.proto === "*") return "other destinations";
  const dns = d.dnsQueries.length > 0 ? ` (DNS ${d.dnsQueries.join(", ")})` : "";
  return `${d.proto} ${hostPort(d.addr, d.port)}${dns}`;
}

export const countSuffix = (n: number) => (n > 1 ? ` ×${n.toLocaleString("en-US")}` : "");

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** An argv as one line a shell would take, cut at `max` characters. */
export function commandLine(argv: readonly string[], max = 160): string {
  const text = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ").replace(/[\r\n\t]+/g, " ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function sandboxVerdict(s: SandboxSummary): Verdict {
  const parts: string[] = [];
  let level: Level = "ok";
  const attempts = Math.max(s.bypass.events, kernelCount(s) ?? 0);
  if (attempts > 0) {
    level = "bypass";
    const verb = s.bypass.observed === s.bypass.events && s.bypass.events > 0 ? "observed" : "rejected";
    parts.push(`${plural(attempts, "bypass attempt")} ${verb} (${s.programs.length > 0 ? plural(s.programs.length, "program") : "no program named"})`);
  } else if (s.ready && s.ready.detection !== "verified") {
    level = "warn";
    parts.push(`no bypass attempt seen, but detection was ${s.ready.detection}`);
  } else parts.push("no bypass attempts");
  if (s.proxy.requests > 0) parts.push(`${plural(s.proxy.requests, "proxied request")}${s.proxy.refused > 0 ? ` (${s.proxy.refused} refused)` : ""}`);
  if (s.degraded.length > 0) {
    if (level === "ok") level = "warn";
    parts.push(`${plural(s.degraded.length, "part")} degraded`);
  }
  if (s.closed === null) parts.push("no sandbox_closed line (still running, or cut off)");
  else if (s.closed.cmd_signal !== null) parts.push(`CMD died of ${s.closed.cmd_signal}`);
  else if (s.closed.cmd_exit_code !== null) parts.push(`CMD exited ${s.closed.cmd_exit_code}`);
  return { level, text: parts.join("; ") };
}

/** Rejected packets the kernel counted (bypass_totals), when known. */
export function kernelCount(s: SandboxSummary): number | null {
  const t = s.totals;
  if (t === null || t.tcp === null || t.udp === null) return null;
  return t.tcp + t.udp + (t.other ?? 0);
}

export function overallVerdict(r: Report): Verdict {
  const n = r.sandboxes.length;
  if (n === 0) return { level: "warn", text: "no proxywall events found" };
  const verdicts = r.sandboxes.map(sandboxVerdict);
  const attempts = r.sandboxes.reduce((a, s) => a + Math.max(s.bypass.events, kernelCount(s) ?? 0), 0);
  const bypassed = verdicts.filter((v) => v.level === "bypass").length;
  const requests = r.sandboxes.reduce((a, s) => a + s.proxy.requests, 0);
  const refused = r.sandboxes.reduce((a, s) => a + s.proxy.refused, 0);
  const degraded = r.sandboxes.reduce((a, s) => a + s.degraded.length, 0);
  const level: Level = bypassed > 0 ? "bypass" : verdicts.some((v) => v.level === "warn") ? "warn" : "ok";
  const parts = [attempts > 0 ? `${plural(attempts, "bypass attempt")} in ${bypassed} of ${plural(n, "sandbox", "sandboxes")}` : `no bypass attempts in ${plural(n, "sandbox", "sandboxes")}`];
  parts.push(`${plural(requests, "proxied request")}${refused > 0 ? ` (${refused} refused)` : ""}`);
  if (degraded > 0) parts.push(`${plural(degraded, "part")} degraded`);
  if (level === "warn" && attempts === 0 && degraded === 0) parts.push("detection not verified");
  return { level, text: parts.join("; ") };
}

export interface TreeNode {
  name: string;
  /** Full path of the executable, when known. */
  path: string | null;
  /** Attempts made by this very program (0 for a parent that made none itself). */
  attempts: number;
  program: Program | null;
  children: TreeNode[];
}

/** Programs that were blocked, arranged under their parents (root first), merged by executable path. */
export function processTree(programs: readonly Program[]): TreeNode[] {
  const roots: TreeNode[] = [];
  for (const p of programs) {
    const chain = [...p.ancestors].reverse();
    let level = roots;
    for (const exe of chain) {
      let node = level.find((n) => n.path === exe && n.program === null);
      if (!node) {
        node = { name: baseName(exe), path: exe, attempts: 0, program: null, children: [] };
        level.push(node);
      }
      level = node.children;
    }
    level.push({ name: programName(p), path: p.exe, attempts: p.attempts, program: p, children: [] });
  }
  return roots;
}

/** The same hints across sandboxes, each once, with their total count. */
export function allHints(r: Report): { hint: string; count: number }[] {
  const m = new Map<string, number>();
  for (const s of r.sandboxes) for (const h of s.hints) m.set(h.hint, (m.get(h.hint) ?? 0) + h.count);
  return [...m].map(([hint, count]) => ({ hint, count })).sort((a, b) => b.count - a.count);
}
