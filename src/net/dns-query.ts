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
      return labels.length === 0 ? "." : labels.join(".");
    }
    if (len > MAX_LABEL) return null; // 0xC0 pointer, or the reserved 0x40/0x80 forms
    if (at + 1 + len > msg.length) return null;
    labels.push(labelText(msg, at + 1, at + 1 + len));
    at += 1 + len;
  }
  return null;
}
