// What one client connection's proxy_connect line says, gathered as the connection goes: the
// request, where it went, the bytes each way, how it ended and who asked. connection.ts moves the
// connection through its states; this keeps its record and writes the line.
import { nowTs } from "../events/bypass-event.ts";
import type { ProcessInfo, ProxyConnect } from "../events/schema.ts";
import type { Verdict } from "./admit.ts";
import type { Outcome } from "./refusals.ts";

export class ConnectRecord {
  private readonly t0 = performance.now();
  method = "";
  dstHost = "";
  dstPort = 0;
  dstAddr: string | null = null;
  status = 0;
  /** Bytes carried by the upstream connection: written to it, and read from it and passed on. */
  bytesUp = 0;
  bytesDown = 0;
  outcome: Outcome | null = null;
  error: string | null = null;
  /** The policy's verdict (and its rule and reason), once asked. */
  verdict: Verdict | null = null;
  process: ProcessInfo = null;

  constructor(
    private readonly sandbox: string,
    readonly clientAddr: string,
    readonly clientPort: number,
  ) {}

  /** The first outcome stands, but would_deny (a request served in audit mode) gives way to what happened next. */
  setOutcome(outcome: Outcome, error: string | null): void {
    if (this.outcome !== null && this.outcome !== "would_deny") return;
    this.outcome = outcome;
    this.error = error;
  }

  event(): ProxyConnect {
    return {
      v: 1,
      event: "proxy_connect",
      ts: nowTs(),
      sandbox: this.sandbox,
      method: this.method,
      client_addr: this.clientAddr,
      client_port: this.clientPort,
      dst_host: this.dstHost,
      dst_addr: this.dstAddr,
      dst_port: this.dstPort,
      status: this.status,
      bytes_up: this.bytesUp,
      bytes_down: this.bytesDown,
      duration_ms: Math.round((performance.now() - this.t0) * 10) / 10,
      outcome: this.outcome ?? "ok",
      rule: this.verdict?.rule ?? null,
      reason: this.verdict && this.verdict.outcome !== "ok" ? this.verdict.reason : null,
      error: this.error,
      process: this.process,
    };
  }
}
