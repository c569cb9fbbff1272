// The report as one self-contained HTML page: inline style and SVG only, a Content-Security-Policy
// that forbids loading anything, no script. The same content as the markdown, plus a timeline of
// attempts and requests and the process tree of what was blocked. Everything from events is escaped.
import { hostPort, type Report, type SandboxSummary } from "./aggregate.ts";
import { allHints, ancestry, bytes, commandLine, countSuffix, destName, duration, kernelCount, overallVerdict, plural, processTree, programName, sandboxVerdict, type Level, type TreeNode } from "./format.ts";
import { TIMELINE_KINDS, type TimelineData } from "./timeline.ts";

const ESC: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ESC[c]!);

const LABEL: Record<Level, string> = { bypass: "Bypass attempts", warn: "Warning", ok: "OK" };
const COLOR = { bypass: "#d1242f", refused: "#bc4c00", allowed: "#1a7f37" } as const;

const STYLE = `
:root{color-scheme:light;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
body{max-width:1200px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:0 0 6px}h3{font-size:15px;margin:18px 0 6px}
.verdict{padding:12px 16px;border-radius:8px;font-weight:600;font-size:17px;margin-bottom:16px;border:1px solid}
.v-bypass{background:#ffebe9;border-color:#ff8182;color:#82071e}.v-warn{background:#fff8c5;border-color:#d4a72c;color:#4d2d00}.v-ok{background:#dafbe1;border-color:#4ac26b;color:#044f1e}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin-bottom:16px}
.facts{color:#57606a;font-size:13px;margin-bottom:8px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;font-weight:600;margin-right:6px}
.b-bypass{background:#d1242f;color:#fff}.b-warn{background:#bf8700;color:#fff}.b-ok{background:#1a7f37;color:#fff}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,2fr);gap:16px}
.nw{white-space:nowrap}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:18px}ul.tree{padding-left:0}ul.tree li{margin:2px 0}
ul.tree li::before{content:"└ ";color:#8c959f}ul.tree>li::before{content:""}
.blocked{color:#d1242f;font-weight:600}.ok{color:#1a7f37}.refused{color:#bc4c00;font-weight:600}
.note{color:#57606a;font-size:12px}svg{display:block;width:100%;height:auto}
.hints li{margin:4px 0}
`;

function table(head: string[], rows: string[][], numeric: number[] = []): string {
  const th = head.map((h, i) => `<th${numeric.includes(i) ? ' class="n"' : ""}>${h}</th>`).join("");
  const trs = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ' class="n"' : ""}>${c}</td>`).join("")}</tr>`).join("\n");
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

const c = (s: string) => `<code>${esc(s)}</code>`;
const n = (x: number) => x.toLocaleString("en-US");

function tree(nodes: TreeNode[]): string {
  const li = (t: TreeNode): string => {
    const title = t.program?.cmdline ? ` title="${esc(commandLine(t.program.cmdline, 400))}"` : t.path ? ` title="${esc(t.path)}"` : "";
    const label = t.program ? `<span class="blocked"${title}>${esc(t.name)}</span> <span class="note">${plural(t.attempts, "attempt")}${t.program.pids > 1 ? `, ${t.program.pids} pids` : ""}</span>` : `<span${title}>${esc(t.name)}</span>`;
    return `<li>${label}${t.children.length > 0 ? `<ul>${t.children.map(li).join("")}</ul>` : ""}</li>`;
  };
  return `<ul class="tree">${nodes.map(li).join("")}</ul>`;
}

/** The timeline over [start, end] (ms since the epoch; the sandbox's first and last lines). */
export function timelineSvg(tl: TimelineData, start: number, end: number): string {
  if (tl.origin === null) return "";
  const W = 1000, H = 170, BAR_H = 90, LANE = 18;
  const t0 = Math.min(start, tl.origin);
  const span = Math.max(end - t0, tl.origin - t0 + tl.buckets.length * tl.bucketMs, 1);
  const x = (t: number) => ((Math.max(0, t - t0) / span) * W).toFixed(1);
  const bx = (i: number) => ((tl.origin! - t0 + i * tl.bucketMs) / span) * W;
  const bw = (tl.bucketMs / span) * W;
  const max = Math.max(1, ...tl.buckets.map((b) => b.bypass + b.allowed + b.refused));
  const parts: string[] = [];
  tl.buckets.forEach((b, i) => {
    let y = BAR_H;
    for (const k of TIMELINE_KINDS) {
      if (b[k] === 0) continue;
      const h = (b[k] / max) * (BAR_H - 4);
      y -= h;
      parts.push(`<rect x="${bx(i).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(bw - 1, 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${k === "bypass" ? COLOR.bypass : k === "refused" ? COLOR.refused : COLOR.allowed}"><title>${b[k]} ${k} at +${duration(tl.origin! - t0 + i * tl.bucketMs)}</title></rect>`);
    }
  });
  const lanes = { bypass: 0, refused: 1, allowed: 2 } as const;
  for (const it of tl.detail) {
    const cy = BAR_H + 14 + lanes[it.kind] * LANE;
    parts.push(`<circle cx="${x(it.t)}" cy="${cy}" r="4" fill="${COLOR[it.kind]}" fill-opacity="0.7"><title>+${duration(it.t - t0)} ${esc(it.label)}</title></circle>`);
  }
  const axis = `<line x1="0" y1="${BAR_H}" x2="${W}" y2="${BAR_H}" stroke="#8c959f"/>`;
  const labels = `<text x="2" y="${H - 2}" font-size="11" fill="#57606a">0</text><text x="${W - 2}" y="${H - 2}" font-size="11" fill="#57606a" text-anchor="end">+${duration(span)}</text>`;
  const svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="timeline">${axis}${parts.join("")}${labels}</svg>`;
  const total = tl.detail.length + tl.notDetailed;
  const legend = `<span class="blocked">■ bypass attempts</span> · <span class="refused">■ refused by the proxy</span> · <span class="ok">■ allowed by the proxy</span>`;
  const note = tl.notDetailed > 0 ? `The first ${n(tl.detail.length)} of ${n(total)} attempts and requests are marked one by one (dots); the bars count all of them, in ${duration(tl.bucketMs)} steps.` : `${plural(total, "attempt or request", "attempts and requests")}: dots one by one, bars per ${duration(tl.bucketMs)}.`;
  return `${svg}<div class="note">${legend}. ${note} Hover for details.</div>`;
}

function sandbox(s: SandboxSummary): string {
  const v = sandboxVerdict(s);
  const out = [`<section><h2><span class="badge b-${v.level}">${LABEL[v.level]}</span>Sandbox ${c(s.id)}</h2><div>${esc(v.text)}</div>`];
  const r = s.ready;
  if (r) out.push(`<div class="facts">proxy ${c(r.proxy.url)} ${r.proxy.builtin ? "(built-in)" : "(external)"} · backend ${c(r.backend ?? "none")} · monitor ${c(r.monitor)} · detection ${c(r.detection)}${s.closed ? ` · ran ${duration(s.closed.duration_ms)}` : ""}</div>`);
  if (s.programs.length > 0) {
    const rows = s.programs.map((p) => [
      `<span class="blocked" title="${esc(p.exe ?? p.why ?? "")}">${esc(programName(p))}</span>${p.cmdline ? `<br>${c(commandLine(p.cmdline))}` : ""}`,
      `<span class="nw">${esc(ancestry(p, 6))}</span>`,
      n(p.attempts),
      p.dests.map((d) => `<span class="nw">${c(destName(d))}${countSuffix(d.count)}</span>`).join("<br>"),
    ]);
    const kernel = kernelCount(s);
    const kernelNote = kernel !== null && kernel > s.bypass.events ? `<p class="note">The kernel counted ${plural(kernel, "rejected packet")}: ${n(kernel - s.bypass.events)} beyond the events (log rate limit).</p>` : "";
    out.push(`<div class="grid"><div><h3>Bypass attempts</h3>${table(["Program", "Started by", "Attempts", "Destinations"], rows, [2])}${kernelNote}</div><div><h3>Process tree of what was blocked</h3>${tree(processTree(s.programs))}</div></div>`);
  }
  if (s.proxy.dests.length > 0) {
    const rows = s.proxy.dests.map((d) => [
      d.host === "*" ? "other destinations" : c(hostPort(d.host, d.port)),
      `<span class="${d.allowed ? "ok" : "refused"}">${esc(d.outcome)}</span>${d.rules.length > 0 ? ` rule ${d.rules.map(c).join(", ")}` : ""}${d.error ? `<br><span class="note">${esc(d.error)}</span>` : ""}`,
      n(d.count),
      bytes(d.bytesUp),
      bytes(d.bytesDown),
      esc(d.statuses.join(", ")),
      d.methods.map(c).join(" "),
    ]);
    out.push(`<h3>Proxy: ${n(s.proxy.allowed)} allowed, ${n(s.proxy.refused)} refused, ${bytes(s.proxy.bytesUp)} up, ${bytes(s.proxy.bytesDown)} down</h3>`);
    out.push(table(["Destination", "Outcome", "Requests", "Up", "Down", "Status", "Method"], rows, [2, 3, 4]));
  }
  if (s.degraded.length > 0) {
    out.push(`<h3>Degraded</h3>${table(["Part", "Missing", "Fix", "Still protected"], s.degraded.map((d) => [`<span class="nw">${c(d.component)}</span>`, esc(d.missing), esc(d.fix), esc(d.still_protected)]))}`);
  }
  const tl = timelineSvg(s.timeline, s.first, s.last);
  if (tl) out.push(`<h3>Timeline</h3>${tl}`);
  out.push("</section>");
  return out.join("\n");
}

export function renderHtml(r: Report): string {
  const v = overallVerdict(r);
  const hints = allHints(r);
  const notes: string[] = [];
  if (r.skipped.count > 0) notes.push(`${plural(r.skipped.count, "line")} that are not proxywall events skipped (first: ${esc(r.skipped.first ?? "")}).`);
  if (r.otherSandboxLines > 0) notes.push(`${plural(r.otherSandboxLines, "line")} of sandboxes beyond the first ${r.sandboxes.length} not counted.`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>proxywall report: ${esc(v.text)}</title>
<style>${STYLE}</style></head>
<body>
<h1>proxywall report</h1>
<div class="verdict v-${v.level}">${esc(v.text)}</div>
${r.sandboxes.map(sandbox).join("\n")}
${hints.length > 0 ? `<section><h2>Fixes</h2><ul class="hints">${hints.map((h) => `<li>${esc(h.hint)} <span class="note">(${plural(h.count, "attempt")})</span></li>`).join("")}</ul></section>` : ""}
${notes.map((x) => `<p class="note">${x}</p>`).join("\n")}
</body></html>
`;
}
