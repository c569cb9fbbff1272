// A tiny DNS server of a test's own (UDP, one question per query), listening in a test namespace,
// so that a test decides what a name resolves to, and how the answer changes from one lookup to
// the next, without asking any real resolver. Pair it with a resolv.conf bind-mounted in a mount
// namespace of the test's own (withEtcFiles in etc-files.ts). It runs as a child process started
// in the namespace: Bun binds a UDP socket after the call returns, so a socket made on a thread
// that entered the namespace for the call would be bound in the test's own namespace.
import { createSocket } from "node:dgram";
import { dnsQueryName } from "../../src/net/dns-query.ts";

export const TYPE_A = 1;
export const TYPE_AAAA = 28;

export interface DnsQuery {
  name: string;
  type: number;
}

/**
 * What each name resolves to, lookup after lookup: the n-th query of a type for a name gets
 * entry n (cycling) of its list, each entry the addresses to answer with (those of the query's
 * type; none is an empty answer) or null for NXDOMAIN. A name not listed is NXDOMAIN.
 */
export type Answers = Record<string, (string[] | null)[]>;

export interface DnsServer {
  /** Every query received so far, in order. */
  readonly queries: DnsQuery[];
  close(): Promise<void>;
}

function ipv4Bytes(a: string): number[] {
  return a.split(".").map(Number);
}

function ipv6Bytes(a: string): number[] {
  const [head, tail] = a.includes("::") ? a.split("::") : [a, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t].map((w) => parseInt(w, 16));
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** The end of the first question (its name, type and class), or -1. */
function questionEnd(msg: Buffer): number {
  let at = 12;
  while (at < msg.length && msg[at] !== 0) at += msg[at]! + 1;
  return at + 5 <= msg.length ? at + 5 : -1;
}

/** The response to `msg`: the question copied, then one record per address (TTL 0, so nothing caches it). */
export function dnsResponse(msg: Buffer, addrs: string[] | null, type: number): Buffer | null {
  const end = questionEnd(msg);
  if (end < 0) return null;
  const records = (addrs ?? []).filter((a) => (type === TYPE_A ? !a.includes(":") : a.includes(":")));
  const header = Buffer.alloc(12);
  msg.copy(header, 0, 0, 2); // the id
  // QR, opcode 0, RD copied, RA; rcode 3 (NXDOMAIN) when there is no such name.
  header.writeUInt16BE(0x8080 | (msg[2]! & 0x01) << 8 | (addrs === null ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const answers = records.map((a) => {
    const rdata = type === TYPE_A ? ipv4Bytes(a) : ipv6Bytes(a);
    const rr = Buffer.alloc(12 + rdata.length);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(type, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(0, 6); // TTL 0
    rr.writeUInt16BE(rdata.length, 10);
    Buffer.from(rdata).copy(rr, 12);
    return rr;
  });
  return Buffer.concat([header, msg.subarray(12, end), ...answers]);
}

/** Listens on `host`:53 (UDP) inside the namespace entered by `nsPrefix` (nsenter --net=PATH). */
export async function startDnsServer(nsPrefix: string[], host: string, answers: Answers): Promise<DnsServer> {
  const p = Bun.spawn([...nsPrefix, process.execPath, import.meta.path, host, JSON.stringify(answers)], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const queries: DnsQuery[] = [];
  let ready: () => void;
  const listening = new Promise<void>((r) => (ready = r));
  const read = (async () => {
    let rest = "";
    for await (const chunk of p.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line === "listening") ready!();
        else queries.push(JSON.parse(line) as DnsQuery);
      }
    }
  })();
  const started = await Promise.race([listening.then(() => true), p.exited.then(() => false), Bun.sleep(10_000).then(() => false)]);
  const close = async () => {
    p.kill("SIGKILL");
    await p.exited;
    await read;
  };
  if (!started) {
    await close();
    throw new Error(`the test DNS server on ${host}:53 did not start`);
  }
  return { queries, close };
}

/** The child: serves `answers` on HOST:53 and prints `listening`, then one JSON line per query. */
function serve(host: string, answers: Answers): void {
  const sock = createSocket("udp4");
  const seen = new Map<string, number>();
  sock.on("message", (msg, from) => {
    const name = dnsQueryName(msg);
    const end = questionEnd(msg);
    if (name === null || end < 0) return;
    const q = { name, type: msg.readUInt16BE(end - 4) };
    console.log(JSON.stringify(q));
    const list = answers[name];
    const key = `${q.type} ${name}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    const addrs = list === undefined ? null : q.type === TYPE_A || q.type === TYPE_AAAA ? list[n % list.length]! : [];
    const reply = dnsResponse(msg, addrs, q.type);
    if (reply) sock.send(reply, from.port, from.address);
  });
  sock.bind(53, host, () => console.log("listening"));
}

if (import.meta.main) serve(process.argv[2]!, JSON.parse(process.argv[3]!) as Answers);
