// What a connection asks before it connects anywhere (the seam between the proxy's mechanics and
// the policy): who opened the client connection, whether they may, and the checked addresses to
// connect to. admission.ts builds the real one from a policy.
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
  process: ProcessInfo;
  /** For a tunnel: judges its first bytes (the server name a TLS ClientHello asks for); null when fine. */
  checkHello(first: FirstBytes): Verdict | null;
}

/** The client's end of its connection, and the door's end it connected to. */
export interface ClientEnds {
  addr: string;
  port: number;
  local: { addr: string; port: number };
}

export type Admit = (target: { host: string; port: number }, client: ClientEnds) => Promise<Admission | (Refusal & { process: ProcessInfo })>;

