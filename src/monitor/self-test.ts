// The self-test: before CMD starts, proxywall makes one TCP and one UDP attempt from inside the
// sandbox to a reserved address and waits for the monitor to report them. Only then does
// sandbox_ready say detection is "verified"; otherwise a degraded line says what is missing.
import { errnoName } from "../sys/errno.ts";
import { errno, libc } from "../sys/libc.ts";
import { inNetns } from "../sys/netns.ts";
import { AF_INET, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM } from "../sys/socket-abi.ts";

/** TEST-NET-3 (RFC 5737): never routed, and the fence rejects it before it leaves. */
export const PROBE_ADDR = "203.0.113.1";
export const PROBE_PORT = 9;

export function isProbe(key: { dstAddr: string; dstPort: number }): boolean {
  return key.dstAddr === PROBE_ADDR && key.dstPort === PROBE_PORT;
}


function sockaddrIn(addr: string, port: number): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF_INET, true);
  dv.setUint16(2, port, false);
  addr.split(".").forEach((o, i) => (b[4 + i] = Number(o)));
  return b;
}

/**
 * Sends the probe packets from inside the namespace at `nsPath`: a non-blocking TCP connect
 * (its SYN is what gets held or logged) and a UDP datagram. Returns problems, if any.
 */
export function sendProbes(nsPath: string): { fds: number[]; problems: string[] } {
  const c = libc();
  const to = sockaddrIn(PROBE_ADDR, PROBE_PORT);
  const problems: string[] = [];
  const fds = inNetns(nsPath, () => {
    const tcp = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tcp < 0) problems.push(`probe TCP socket: ${errnoName(errno())}`);
    // EINPROGRESS is the expected answer: the SYN is on its way to the fence.
    else c.connect(tcp, to, to.length);
    const udp = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (udp < 0) problems.push(`probe UDP socket: ${errnoName(errno())}`);
    // EPERM is the expected answer: the fence rejected the datagram.
    else c.sendto(udp, new Uint8Array([0]), 1, 0, to, to.length);
    return [tcp, udp];
  });
  // Closed by the caller once the packets were seen: a held SYN needs its socket.
  return { fds: fds.filter((fd) => fd >= 0), problems };
}

export function closeProbeFds(fds: readonly number[]): void {
  for (const fd of fds) libc().close(fd);
}
