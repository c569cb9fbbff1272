// proxywall's DNS responder: UDP sockets on the sandbox's own loopback (127.0.0.1 and ::1) to which
// the fence's nat rule redirects every DNS query CMD sends, to any server. Each query is answered
// REFUSED at once, so the client fails as fast as at a reject, and it is attributed first: the
// client waits for the answer, so its socket still exists however quickly it gives up afterwards
// (a rejected sendto fails with EPERM and getaddrinfo closes its socket within a fraction of a
// millisecond: a lookup after the log message missed about half of them). The sockets are made on
// the calling thread inside the namespace (setns) and read by the watch thread.
import { dnsQuestion, refusedAnswer } from "../net/dns-query.ts";
import { formatIPv6 } from "../net/ip-address.ts";
import { EAGAIN, EINTR, errnoName } from "../sys/errno.ts";
import { errno, libc } from "../sys/libc.ts";
import { inNetns } from "../sys/netns.ts";
import { NetlinkError } from "./netlink-codec.ts";
import { AF_INET, AF_INET6, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK } from "../sys/socket-abi.ts";

const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

export interface ResponderSocket {
  fd: number;
  family: "ipv4" | "ipv6";
  /** The address it listens on, which the answers come from before conntrack restores the server's. */
  addr: string;
  port: number;
}

/** What one query showed: who sent it, the name and type asked, and the answer to send back. */
export interface Query {
  family: "ipv4" | "ipv6";
  srcAddr: string;
  srcPort: number;
  name: string | null;
  type: string | null;
  answer: Uint8Array | null;
}

function sockaddr(family: "ipv4" | "ipv6", addr: string, port: number): Uint8Array {
  const b = new Uint8Array(family === "ipv4" ? 16 : 28);
  const v = new DataView(b.buffer);
  v.setUint16(0, family === "ipv4" ? AF_INET : AF_INET6, true);
  v.setUint16(2, port, false);
  if (family === "ipv4") addr.split(".").forEach((x, i) => (b[4 + i] = Number(x)));
  else if (addr === "::1") b[23] = 1;
  return b;
}

/** The address and port in a struct sockaddr_in or sockaddr_in6. */
export function fromSockaddr(b: Uint8Array): { family: "ipv4" | "ipv6"; addr: string; port: number } | null {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = v.getUint16(0, true);
  const port = v.getUint16(2, false);
  if (family === AF_INET && b.length >= 8) return { family: "ipv4", addr: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port };
  if (family === AF_INET6 && b.length >= 24) return { family: "ipv6", addr: formatIPv6(Array.from({ length: 8 }, (_, i) => v.getUint16(8 + 2 * i, false))), port };
  return null;
}

function failed(what: string): NetlinkError {
  const e = errno();
  return new NetlinkError(`${what}: ${errnoName(e)}`, e);
}

function bindOne(family: "ipv4" | "ipv6", port: number): ResponderSocket {
  const c = libc();
  const fd = c.socket(family === "ipv4" ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw failed("cannot create the DNS responder's socket");
  const addr = family === "ipv4" ? "127.0.0.1" : "::1";
  try {
    if (family === "ipv6" && c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, new Int32Array([1]), 4) !== 0) throw failed("IPV6_V6ONLY");
    const sa = sockaddr(family, addr, port);
    if (c.bind(fd, sa, sa.length) !== 0) throw failed(`cannot bind the DNS responder to ${family === "ipv4" ? addr : `[${addr}]`}:${port}`);
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return { fd, family, addr, port };
}

/**
 * The responder's sockets inside the namespace: IPv4 always, IPv6 where the namespace has it
 * (without IPv6 nothing can send an IPv6 query either).
 */
export function bindResponder(nsPath: string, port: number): ResponderSocket[] {
  return inNetns(nsPath, () => {
    const v4 = bindOne("ipv4", port);
    try {
      return [v4, bindOne("ipv6", port)];
    } catch {
      return [v4];
    }
  });
}

/**
 * Reads every datagram queued on `s`; for each, `onQuery` decides (it attributes first), then the
 * answer is sent. Datagrams that are not DNS queries get no answer.
 */
export function drainQueries(s: ResponderSocket, buf: Uint8Array, onQuery: (q: Query) => void): void {
  const c = libc();
  const from = new Uint8Array(28);
  const fromLen = new Uint32Array(1);
  for (;;) {
    fromLen[0] = from.length;
    const n = Number(c.recvfrom(s.fd, buf, buf.length, MSG_DONTWAIT, from, fromLen));
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return;
      throw new NetlinkError(`the DNS responder's recvfrom failed: ${errnoName(e)}`, e);
    }
    const peer = fromSockaddr(from.subarray(0, fromLen[0]));
    if (!peer) continue;
    const payload = buf.subarray(0, n);
    const question = dnsQuestion(payload);
    const q: Query = { family: s.family, srcAddr: peer.addr, srcPort: peer.port, name: question?.name ?? null, type: question?.type ?? null, answer: refusedAnswer(payload) };
    onQuery(q);
    if (q.answer) c.sendto(s.fd, q.answer, q.answer.length, MSG_DONTWAIT, from, fromLen[0]!);
  }
}
