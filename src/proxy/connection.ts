// One client connection to the proxy, from its first byte to its one proxy_connect event:
//   head -> admitting (who is asking, may they, to which checked addresses) -> connecting -> open.
// The upstream connection goes only to an address the admission checked: no second lookup, so a
// resolver answer that changes between the check and the connect cannot reach a refused address.
// A CONNECT tunnel holds the client's first bytes until they show whether they are a TLS
// ClientHello, and for which server name (domain fronting is refused before any byte goes up).
//
// Over 400 lines on purpose: one connection's states and the events that move it between them are
// one state machine, read best in one place; what is not state lives in modules of its own (the
// event line's record, the head reader, the idle clock, admission, refusal texts, the ClientHello
// reader, name resolution, the splice hand-over).
import net from "node:net";
import { diag } from "../diag.ts";
import type { ProcessInfo, ProxyConnect } from "../events/schema.ts";
import { ConnectRecord } from "./connect-record.ts";
import { ResponseStatus, type ProxyRequest } from "./head.ts";
import { HeadReader } from "./head-reader.ts";
import { IdleClock, idleError } from "./idle-clock.ts";
import { connectRefusal, errorResponse, hostPort, type Outcome, type Refusal } from "./refusals.ts";
import { errnoName } from "../sys/errno.ts";
import { prepareSplice, spliceReady, spliceStarting, spliceTunnel, type SpliceEnd, type Spliced } from "./splice-relay.ts";
import { MAX_HELLO_BYTES, readFirstBytes, type FirstBytes } from "./tls-sni.ts";
import type { Admit, Identify, Verdict } from "./admit.ts";

export type { Admission, Admit, ClientEnds, Identify, Verdict } from "./admit.ts";

export interface ConnectionOptions {
  sandbox: string;
  onEvent: (e: ProxyConnect) => void;
  identify: Identify;
  admit: Admit;
  connectTimeoutMs: number;
  headTimeoutMs: number;
  /** No byte either way for this long ends a tunnel or request. */
  idleTimeoutMs: number;
}

type State = "head" | "admitting" | "connecting" | "open" | "refused" | "done";

const ESTABLISHED = "HTTP/1.1 200 Connection established\r\n\r\n";
/** After an error response, how long the client has to read it and close before it is cut. */
const LINGER_MS = 2000;
/** How long a tunnel's first bytes may take to show a whole ClientHello. */
const HELLO_TIMEOUT_MS = 10_000;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d; events and lookups want a.b.c.d. */
const unmapped = (addr: string) => (addr.startsWith("::ffff:") && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr);

export class Connection {
  private state: State = "head";
  /** What the event line will say. */
  private readonly rec: ConnectRecord;
  private readonly head = new HeadReader();
  private identified = false;
  private upstream: net.Socket | null = null;
  /** What the client sent that has not gone upstream yet (after the head, or before the ClientHello showed). */
  private early: Buffer[] = [];
  /** A tunnel's first bytes are held until checkSni has seen them. */
  private helloGate: ((first: FirstBytes) => Verdict | null) | null = null;
  private clientEndedEarly = false;
  private responseStatus: ResponseStatus | null = null;
  private wroteToClient = false;
  private clientClosed = false;
  private upstreamClosed = true;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly idle: IdleClock;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Set once the tunnel's bytes move in the kernel (splice-relay.ts); its sockets are no longer ours. */
  private spliced: Spliced | null = null;
  /** The hand-over waits for the bytes the JS relay still has to write. */
  private spliceWhenDrained = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly client: net.Socket,
    private readonly opts: ConnectionOptions,
    private readonly forget: () => void,
    /** Set when the proxy already serves as many clients as it may: the head is read (for the event), then 503. */
    private readonly overLimit: string | null = null,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.idle = new IdleClock(opts.idleTimeoutMs);
    this.rec = new ConnectRecord(opts.sandbox, unmapped(client.remoteAddress ?? ""), client.remotePort ?? 0);
    // A relay passes on small writes (TLS handshakes, interactive protocols) as they come.
    client.setNoDelay(true);
    client.on("data", (d: Buffer) => this.onClientData(d));
    client.on("end", () => this.onClientEnd());
    client.on("drain", () => {
      this.upstream?.resume();
      if (this.spliceWhenDrained) this.handOver();
    });
    client.on("error", (e) => this.fail("client_error", `client: ${errorText(e)}`));
    client.on("close", () => {
      this.clientClosed = true;
      // Closed before its read side ended (reset, or destroyed): nothing more can be relayed.
      if (this.state !== "done" && !client.readableEnded) this.fail("client_error", "the client connection was cut");
      this.maybeFinish();
    });
    this.timer = setTimeout(() => this.refuse({ status: 408, outcome: "client_error", error: "no complete request head in time" }), opts.headTimeoutMs);
    client.resume();
  }

  /** Cuts the connection (proxy shutdown) and resolves once its event is written. */
  abort(why: string): Promise<void> {
    if (this.state !== "done") {
      this.rec.setOutcome(this.state === "open" ? "ok" : this.state === "connecting" ? "connect_failed" : "client_error", why);
      this.client.destroy();
      this.upstream?.destroy();
      this.spliced?.cut();
    }
    return this.done;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The idle clock's looks, from a timer (idle-clock.ts). */
  private startIdleClock(): void {
    const look = () => {
      if (this.idle.look()) return this.fail("idle_timeout", idleError(this.idle.timeoutMs));
      this.idleTimer = setTimeout(look, this.idle.quarterMs);
    };
    this.idleTimer = setTimeout(look, this.idle.quarterMs);
  }

  private onClientData(d: Buffer): void {
    if (this.state === "open" && !this.helloGate) {
      this.idle.moved = true;
      this.rec.bytesUp += d.length;
      if (!this.upstream!.write(d)) this.client.pause();
      return;
    }
    if (this.state === "open") return this.onHelloBytes(d);
    if (this.state === "admitting" || this.state === "connecting") {
      this.early.push(d); // the client is paused; this is what was already on its way
      return;
    }
    if (this.state !== "head") return; // refused: discard what the client still sends
    const read = this.head.push(d);
    if (read.kind === "more") return;
    if (read.kind === "bad") {
      this.rec.method = read.method;
      return this.refuse({ status: 400, outcome: "bad_request", error: read.error });
    }
    this.clearTimer();
    this.client.pause();
    const { req, rest } = read;
    this.rec.method = req.method;
    this.rec.dstHost = req.host;
    this.rec.dstPort = req.port;
    if (req.kind === "forward") {
      this.early.push(Buffer.from(req.upstreamHead, "latin1"));
      this.responseStatus = new ResponseStatus();
    }
    if (rest.length > 0) this.early.push(rest);
    if (this.overLimit) {
      this.refuse({ status: 503, outcome: "limit", error: this.overLimit });
      return;
    }
    void this.admitThenConnect(req);
  }

  /**
   * Who opened this connection, looked up once while its socket is open (the lookup needs the
   * socket in the sandbox's table), whether or not the request gets as far as the policy.
   */
  private identify(): ProcessInfo {
    if (this.identified) return this.rec.process;
    this.identified = true;
    const local = { addr: unmapped(this.client.localAddress ?? ""), port: this.client.localPort ?? 0 };
    try {
      this.rec.process = this.opts.identify({ addr: this.rec.clientAddr, port: this.rec.clientPort, local });
    } catch (e) {
      diag.debug(`proxy: who opened ${hostPort(this.rec.clientAddr, this.rec.clientPort)}: ${errorText(e)}`);
    }
    return this.rec.process;
  }

  private async admitThenConnect(req: ProxyRequest): Promise<void> {
    this.state = "admitting";
    let a: Awaited<ReturnType<Admit>>;
    try {
      a = await this.opts.admit({ host: req.host, port: req.port }, this.identify());
    } catch (e) {
      a = { status: 502, outcome: "connect_failed", error: `the policy failed: ${errorText(e)}` };
    }
    if (this.state !== "admitting") return; // the client went away meanwhile
    if (!("verdict" in a)) return this.refuse(a);
    this.rec.verdict = a.verdict;
    if (!a.verdict.allowed) return this.deny(a.verdict, 403);
    if (a.verdict.outcome === "would_deny") this.rec.setOutcome("would_deny", null);
    if (req.kind === "connect") {
      this.helloGate = (first) => a.checkHello(first);
      prepareSplice();
    }
    this.connect(a.addrs);
  }

  /** A refusal by the policy: 403 (or a cut tunnel), naming the rule or guard row that decided. */
  private deny(v: Verdict, status: number): void {
    this.rec.verdict = v;
    const text = `proxywall denied ${hostPort(this.rec.dstHost, this.rec.dstPort)}: ${v.reason}${v.rule ? ` (${v.rule})` : ""}`;
    this.refuse({ status, outcome: "denied", error: null }, { "X-Proxywall-Denied": v.rule ?? v.reason }, text);
  }

  private onClientEnd(): void {
    switch (this.state) {
      case "head":
        this.clearTimer();
        this.identify(); // the client sent its FIN; its socket is still in the table
        this.rec.setOutcome("client_error", this.head.length === 0 ? "client closed without sending a request" : "client closed before the request head was complete");
        this.client.destroy();
        break;
      case "open":
        if (!this.helloGate) {
          this.upstream!.end();
          break;
        }
        // The client is done before its first bytes showed a whole ClientHello: there is no
        // handshake for any server to act on, so what it sent goes up as it is, then the FIN.
        this.clientEndedEarly = true;
        this.clearTimer();
        this.releaseHello({ kind: "not-tls" });
        break;
      case "admitting":
      case "connecting":
        this.clientEndedEarly = true;
        break;
      case "refused":
      case "done":
        break;
    }
  }

  /** Tries each checked address in turn until one accepts. */
  private connect(addrs: readonly string[], i = 0, last: Refusal | null = null): void {
    const addr = addrs[i];
    if (addr === undefined) return this.refuse(last ?? { status: 502, outcome: "connect_failed", error: `no address to connect to for ${this.rec.dstHost}` });
    this.state = "connecting";
    const target = hostPort(addr, this.rec.dstPort);
    const up = net.connect({ host: addr, port: this.rec.dstPort, allowHalfOpen: true, noDelay: true });
    this.upstream = up;
    this.upstreamClosed = false;
    this.timer = setTimeout(() => {
      up.destroy();
      this.refuse({ status: 504, outcome: "connect_failed", error: `connecting to ${target} timed out after ${this.opts.connectTimeoutMs} ms` });
    }, this.opts.connectTimeoutMs);
    up.on("connect", () => this.onUpstreamConnect(addr));
    up.on("data", (d: Buffer) => {
      if (this.client.destroyed) return;
      this.idle.moved = true;
      this.rec.bytesDown += d.length;
      this.wroteToClient = true;
      this.responseStatus?.feed(d);
      if (!this.client.write(d)) up.pause();
    });
    up.on("drain", () => {
      if (this.state === "open") this.client.resume();
      if (this.spliceWhenDrained) this.handOver();
    });
    up.on("end", () => {
      if (this.responseStatus && this.rec.bytesDown === 0) return this.refuse({ status: 502, outcome: "upstream_error", error: `${target} closed the connection without a response` });
      this.client.end();
    });
    up.on("error", (e: NodeJS.ErrnoException) => {
      if (this.state === "connecting") {
        this.clearTimer();
        up.removeAllListeners("close");
        this.upstreamClosed = true;
        this.connect(addrs, i + 1, connectRefusal(e.code, target, errorText(e)));
      } else if (this.state === "open" && !this.wroteToClient) {
        this.refuse({ status: 502, outcome: "upstream_error", error: `${target}: ${errorText(e)}` });
      } else {
        this.fail("upstream_error", `upstream: ${errorText(e)}`);
      }
    });
    up.on("close", () => {
      this.upstreamClosed = true;
      if (this.state !== "done" && this.state !== "refused" && !up.readableEnded) this.fail("upstream_error", "the upstream connection was cut");
      this.maybeFinish();
    });
  }

  private onUpstreamConnect(addr: string): void {
    if (this.state !== "connecting") return;
    this.clearTimer();
    this.state = "open";
    this.rec.dstAddr = addr;
    this.startIdleClock();
    if (!this.responseStatus) {
      this.rec.status = 200;
      this.wroteToClient = true;
      this.client.write(ESTABLISHED);
    }
    if (this.helloGate) {
      // Nothing goes up until the first bytes have shown what they are.
      const held = Buffer.concat(this.early);
      this.early = [];
      this.timer = setTimeout(() => this.releaseHello({ kind: "not-tls" }), HELLO_TIMEOUT_MS);
      this.client.resume();
      if (held.length > 0) this.onHelloBytes(held);
      return;
    }
    this.flushEarly();
  }

  private flushEarly(): void {
    let full = false;
    for (const b of this.early) {
      this.rec.bytesUp += b.length;
      full = !this.upstream!.write(b);
    }
    this.early = [];
    if (this.clientEndedEarly) this.upstream!.end();
    else if (!full) this.client.resume(); // else "drain" resumes it
  }

  private onHelloBytes(d: Buffer): void {
    this.early.push(d);
    const held = Buffer.concat(this.early);
    const first = readFirstBytes(held);
    if (first.kind === "more" && held.length <= MAX_HELLO_BYTES && !this.clientEndedEarly) return;
    this.clearTimer();
    // Over a record's worth of bytes without a whole ClientHello is not one.
    this.releaseHello(first.kind === "more" ? { kind: "malformed", why: "no complete ClientHello in the first record" } : first);
  }

  /** The first bytes have shown (or time ran out): check the server name, then relay or cut. */
  private releaseHello(first: FirstBytes): void {
    const gate = this.helloGate!;
    this.helloGate = null;
    const refused = gate(first);
    if (refused?.allowed === false) {
      this.rec.verdict = refused;
      // The client was told 200 already: the tunnel is cut before any byte reached the upstream.
      this.rec.setOutcome("denied", null);
      this.clearTimer();
      this.client.destroy();
      this.upstream?.destroy();
      return;
    }
    if (refused) {
      // Audit mode: what enforce would have cut goes through, and the line says so.
      this.rec.verdict = refused;
      this.rec.setOutcome("would_deny", null);
    }
    this.client.pause();
    this.flushEarly();
    if (!this.clientEndedEarly) this.handOver();
  }

  /** From here on the tunnel only carries bytes: they move in the kernel, off this thread, where that can be done. */
  private handOver(): void {
    this.spliceWhenDrained = false;
    if (this.state !== "open" || this.spliced) return;
    if (this.client.writableLength > 0 || this.upstream!.writableLength > 0) {
      this.spliceWhenDrained = true; // the JS relay goes on meanwhile; "drain" comes back here
      return;
    }
    this.spliced = spliceTunnel(this.client, this.upstream!, this.opts.idleTimeoutMs, (e) => this.onSpliceEnd(e));
    if (this.spliced) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      diag.debug(`proxy: the tunnel to ${hostPort(this.rec.dstHost, this.rec.dstPort)} moves to the splice relay`);
    }
    // The thread is still starting (the first tunnel): the JS relay goes on until it is ready.
    else if (spliceStarting()) void spliceReady().then((ok) => ok && this.handOver());
  }

  private onSpliceEnd(e: SpliceEnd): void {
    this.rec.bytesUp += e.up;
    this.rec.bytesDown += e.down;
    const r = e.end;
    if (r.kind === "idle") this.rec.setOutcome("idle_timeout", idleError(this.idle.timeoutMs));
    else if (r.kind === "error" && !r.harmless) this.rec.setOutcome(`${r.side}_error`, `${r.side}: ${r.op} ${errnoName(r.errno)}`);
    else if (r.kind === "failed") this.rec.setOutcome("upstream_error", r.message);
    this.clientClosed = this.upstreamClosed = true;
    this.maybeFinish();
  }

  /** Answers the client with an error status of the proxy's own, then closes. */
  private refuse(r: Omit<Refusal, "error"> & { error: string | null }, headers: Record<string, string> = {}, text = r.error ?? ""): void {
    if (this.state === "refused" || this.state === "done") return;
    this.clearTimer();
    this.rec.setOutcome(r.outcome, r.error);
    this.upstream?.destroy();
    if (this.wroteToClient || this.client.destroyed) return this.fail(r.outcome, r.error ?? text);
    this.identify();
    this.state = "refused";
    this.rec.status = r.status;
    this.wroteToClient = true;
    this.client.end(errorResponse(r.status, text, headers));
    // Keep reading (and dropping) what the client still sends, so that closing does not reset the
    // connection before it has read the answer; cut it if it does not close soon.
    this.client.resume();
    this.timer = setTimeout(() => this.client.destroy(), LINGER_MS);
  }

  /** Ends the connection at once: an error on either side, or a shutdown. */
  private fail(outcome: Outcome, error: string): void {
    // A reset is how many peers finish closing (a socket closed with unread data, or written to
    // after it closed, resets), so it is not counted as a failure when nothing is lost by it: a
    // client that had sent its FIN, or had been sent the destination's FIN; a destination that had
    // sent its FIN.
    const c = this.client;
    const harmless = this.state === "open" && (outcome === "client_error" ? c.readableEnded || c.writableEnded : outcome === "upstream_error" && this.upstream!.readableEnded);
    if (!harmless) this.rec.setOutcome(outcome, error);
    this.clearTimer();
    this.client.destroy();
    this.upstream?.destroy();
  }

  private maybeFinish(): void {
    if (this.state === "done" || !this.clientClosed || !this.upstreamClosed) return;
    this.state = "done";
    this.clearTimer();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.upstream?.destroy();
    this.client.destroy();
    if (this.responseStatus && this.rec.status === 0) this.rec.status = this.responseStatus.status;
    this.forget();
    try {
      this.opts.onEvent(this.rec.event());
    } catch (err) {
      // Called from a socket's close handler: a throw here would be an uncaught exception.
      diag.error(`proxy: writing a proxy_connect event: ${errorText(err)}`);
    }
    this.resolveDone();
  }
}
