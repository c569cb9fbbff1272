// What a connection asks before it connects anywhere (the seams between the proxy's mechanics and
// the sandbox): who opened the client connection (Identify), whether they may go where they ask,
// and the checked addresses to connect to (Admit). admission.ts builds the real Admit from a policy.
import type { ProcessInfo } from "../events/schema.ts";
import type { Refusal } from "./refusals.ts";
import type { FirstBytes } from "./tls-sni.ts";

export interface Verdict {
  allowed: boolean;
  outcome: "ok" | "denied" | "would_deny";
  rule: string | null;
  reason: string;
}

export interface Admission {
  verdict: Verdict;
  /** Checked addresses to connect to, in order (empty when refused). */
  addrs: readonly string[];
  /** For a tunnel: judges its first bytes (the server name a TLS ClientHello asks for); null when fine. */
  checkHello(first: FirstBytes): Verdict | null;
}

/** The client's end of its connection, and the door's end it connected to. */
export interface ClientEnds {
  addr: string;
  port: number;
  local: { addr: string; port: number };
}

/**
 * Who opened a client connection: an exact lookup in the sandbox, made while the connection is
 * open (null when it cannot be told). Every proxy_connect line carries it, refused ones too.
 */
export type Identify = (client: ClientEnds) => ProcessInfo;

/** Whether `process` may reach `target`, and at which checked addresses. */
export type Admit = (target: { host: string; port: number }, process: ProcessInfo) => Promise<Admission | Refusal>;

