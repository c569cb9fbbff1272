// The server name a TLS ClientHello asks for (SNI), read from the first bytes a client sends into a
// CONNECT tunnel, so a tunnel opened to one host cannot carry a handshake for another (domain
// fronting). Pure: bytes in, a verdict out. RFC 8446 4.1.2 and RFC 6066 3.

/** What the first bytes of a tunnel are, as far as they go. */
export type FirstBytes =
  | { kind: "more" } // could still be a ClientHello: wait for more bytes
  | { kind: "not-tls" } // another protocol: nothing to check
  | { kind: "client-hello"; sni: string | null }
  | { kind: "malformed"; why: string };

/** A ClientHello fits in one record (16 KiB plus its 5-byte header); beyond that it is not one. */
export const MAX_HELLO_BYTES = 16384 + 5;

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const NAME_HOST = 0x00;

export function readFirstBytes(b: Uint8Array): FirstBytes {
  if (b.length === 0) return { kind: "more" };
  if (b[0] !== HANDSHAKE) return { kind: "not-tls" };
  if (b.length < 5) return { kind: "more" };
  // Record version: 3.x (TLS 1.0-1.3 all say 3.1 or 3.3 here).
  if (b[1] !== 3) return { kind: "not-tls" };
  const recordLen = (b[3]! << 8) | b[4]!;
  if (recordLen < 4 || recordLen > 16384) return { kind: "malformed", why: `TLS record length ${recordLen}` };
  if (b.length < 5 + recordLen) return { kind: "more" };
  return parseHello(b.subarray(5, 5 + recordLen));
}

function parseHello(h: Uint8Array): FirstBytes {
  if (h[0] !== CLIENT_HELLO) return { kind: "malformed", why: "the first handshake message is not a ClientHello" };
  const len = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
  // A ClientHello split over several records is legal but unheard of from real clients.
  if (4 + len > h.length) return { kind: "malformed", why: "the ClientHello does not fit in its first record" };
  const r = new Reader(h.subarray(4, 4 + len));
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8()); // session id
  r.skip(r.u16()); // cipher suites
  r.skip(r.u8()); // compression methods
  if (r.left() === 0) return { kind: "client-hello", sni: null }; // no extensions at all
  const ext = new Reader(r.bytes(r.u16()));
  let sni: string | null = null;
  while (ext.left() > 0) {
    const type = ext.u16();
    const body = new Reader(ext.bytes(ext.u16()));
    if (type !== EXT_SERVER_NAME) continue;
    if (sni !== null) return { kind: "malformed", why: "two server_name extensions" };
    const list = new Reader(body.bytes(body.u16()));
    while (list.left() > 0) {
      const nameType = list.u8();
      const name = list.bytes(list.u16());
      if (nameType !== NAME_HOST) continue;
      const text = new TextDecoder("latin1").decode(name);
      if (!/^[\x21-\x7e]+$/.test(text)) return { kind: "malformed", why: "the server name is not printable ASCII" };
      sni = text.toLowerCase().replace(/\.$/, "");
    }
  }
  if (r.failed || ext.failed) return { kind: "malformed", why: "the ClientHello is truncated" };
  return { kind: "client-hello", sni };
}

/** Reads big-endian fields; past the end it reads zeros and remembers that it failed. */
class Reader {
  private at = 0;
  failed = false;
  constructor(private readonly b: Uint8Array) {}
  left(): number {
    return Math.max(0, this.b.length - this.at);
  }
  skip(n: number): void {
    if (this.at + n > this.b.length) this.failed = true;
    this.at += n;
  }
  u8(): number {
    const v = this.at < this.b.length ? this.b[this.at]! : ((this.failed = true), 0);
    this.at += 1;
    return v;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  bytes(n: number): Uint8Array {
    const out = this.b.subarray(this.at, Math.min(this.b.length, this.at + n));
    if (out.length < n) this.failed = true;
    this.at += n;
    return out;
  }
}
