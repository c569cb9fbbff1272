// What the proxy tells a client it will not serve, and the event outcome that goes with it: one
// table, so each cause (a policy denial, a name that does not resolve, a refused or unreachable
// upstream, a timeout, no descriptors left) has its own status, reason and text.
import type { ProxyConnect } from "../events/schema.ts";

export type Outcome = ProxyConnect["outcome"];

export const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  408: "Request Timeout",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export interface Refusal {
  status: number;
  outcome: Outcome;
  error: string;
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A failed upstream connect, by its errno code: never a generic "failed", and never a wrong cause. */
export function connectRefusal(code: string | undefined, target: string, message: string): Refusal {
  switch (code) {
    case "ECONNREFUSED":
      return { status: 502, outcome: "connect_failed", error: `${target} refused the connection (ECONNREFUSED)` };
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return { status: 502, outcome: "connect_failed", error: `no route to ${target} (${code})` };
    case "ETIMEDOUT":
      return { status: 504, outcome: "connect_failed", error: `connecting to ${target} timed out (ETIMEDOUT)` };
    case "EMFILE":
    case "ENFILE":
      // Said plainly: a chain of CONNECTs can exhaust proxywall's descriptors, and "refused" would mislead.
      return { status: 502, outcome: "connect_failed", error: `proxywall has no file descriptors left to connect to ${target} (${code})` };
    default:
      return { status: 502, outcome: "connect_failed", error: `connecting to ${target}: ${message}${code ? ` (${code})` : ""}` };
  }
}

/** A name that could not be resolved: the resolver's own answer decides between 502 and 504. */
export function resolveRefusal(code: string | undefined, name: string, message: string): Refusal {
  if (code === "ENOTFOUND" || code === "ENODATA" || code === "NXDOMAIN")
    return { status: 502, outcome: "resolve_failed", error: `${name} does not resolve (${code})` };
  if (code === "EAI_AGAIN" || code === "ETIMEOUT" || code === "ETIMEDOUT")
    return { status: 504, outcome: "resolve_failed", error: `the resolver did not answer for ${name} (${code})` };
  if (code === "EMFILE" || code === "ENFILE")
    return { status: 502, outcome: "resolve_failed", error: `proxywall has no file descriptors left to resolve ${name} (${code})` };
  return { status: 502, outcome: "resolve_failed", error: `resolving ${name}: ${message}${code ? ` (${code})` : ""}` };
}

/** The full response the proxy sends for a status of its own. */
export function errorResponse(status: number, text: string, extraHeaders: Record<string, string> = {}): string {
  const body = `${status} ${REASONS[status] ?? "Error"}: ${text}\n`;
  const extra = Object.entries(extraHeaders)
    // A header value never carries a line break (the text comes from rules and names).
    .map(([k, v]) => `${k}: ${v.replace(/[\r\n]+/g, " ")}\r\n`)
    .join("");
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
