// The name a DNS query asks for, read from a captured UDP or TCP payload. Used to say which name a
// program tried to resolve around the proxy. Strict and bounded: anything odd gives null.

const HEADER = 12;
const MAX_NAME_WIRE = 255; // RFC 1035 2.3.4
const MAX_LABEL = 63;

function labelText(bytes: Uint8Array, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) {
    let c = bytes[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20; // ASCII lower case: resolvers randomise case (0x20 bits)
    if (c === 0x2e /* . */ || c === 0x5c /* \ */) out += "\\" + String.fromCharCode(c);
    else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += "\\" + String(c).padStart(3, "0"); // RFC 4343 \DDD for anything else
  }
  return out;
}

/**
 * The first question's name ("example.com", "." for the root), ASCII lower-cased, in presentation
 * form (dots and backslashes inside a label and non-printable bytes escaped as in RFC 4343).
 * `overTcp`: the payload starts with the 2-byte length prefix of DNS over TCP. Null when the
 * payload is not a DNS message with at least one complete question; compression pointers in the
 * question are rejected (queries do not use them).
 */
export function dnsQueryName(payload: Uint8Array, overTcp = false): string | null {
  return dnsQuestion(payload, overTcp)?.name ?? null;
}

/** Query types by name (RFC 1035, 3596, 2782, 9460 and friends); others are "TYPEnnn" (RFC 3597). */
const TYPES: Record<number, string> = { 1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY" };

export function dnsTypeName(t: number): string {
  return TYPES[t] ?? `TYPE${t}`;
}

export interface DnsQuestion {
  name: string;
  /** The query type by name ("A", "AAAA", "TYPE65534"). */
  type: string;
  /** Where the question ends in the message (after QTYPE and QCLASS). */
  end: number;
}

/** The first question (name, type) of a DNS message; null as for dnsQueryName. */
export function dnsQuestion(payload: Uint8Array, overTcp = false): DnsQuestion | null {
  let msg = payload;
  if (overTcp) {
    if (payload.length < 2) return null;
    const len = (payload[0]! << 8) | payload[1]!;
    msg = payload.subarray(2, 2 + len);
  }
  if (msg.length < HEADER) return null;
  const qdcount = (msg[4]! << 8) | msg[5]!;
  if (qdcount === 0) return null;
  const labels: string[] = [];
  let at = HEADER;
  let wire = 0;
  // Every step consumes at least one byte of a name at most 255 bytes long.
  for (let step = 0; step <= MAX_NAME_WIRE; step++) {
    if (at >= msg.length) return null;
    const len = msg[at]!;
    wire += 1 + len;
    if (wire > MAX_NAME_WIRE) return null;
    if (len === 0) {
      // QTYPE and QCLASS must follow.
      if (at + 1 + 4 > msg.length) return null;
      const type = (msg[at + 1]! << 8) | msg[at + 2]!;
      return { name: labels.length === 0 ? "." : labels.join("."), type: dnsTypeName(type), end: at + 5 };
    }
    if (len > MAX_LABEL) return null; // 0xC0 pointer, or the reserved 0x40/0x80 forms
    if (at + 1 + len > msg.length) return null;
    labels.push(labelText(msg, at + 1, at + 1 + len));
    at += 1 + len;
  }
  return null;
}

const RCODE_REFUSED = 5;

/**
 * The answer REFUSED to a query (UDP payload, no length prefix): its id, opcode and RD flag, QR
 * set, and its first question echoed (resolvers check it), nothing else. Null when the query has
 * no complete question.
 */
export function refusedAnswer(query: Uint8Array): Uint8Array | null {
  const q = dnsQuestion(query);
  if (!q || (query[2]! & 0x80) !== 0) return null; // no question, or it is an answer itself
  const out = new Uint8Array(q.end);
  out.set(query.subarray(0, q.end));
  out[2] = 0x80 | (query[2]! & 0x79); // QR, the opcode and RD as asked; AA and TC clear
  out[3] = RCODE_REFUSED; // RA clear: this is no recursive resolver
  out[4] = 0;
  out[5] = 1; // QDCOUNT 1
  out.fill(0, 6, 12); // ANCOUNT, NSCOUNT, ARCOUNT
  return out;
}
