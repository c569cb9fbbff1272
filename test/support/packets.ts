// IPv4/IPv6 packets with TCP or UDP, and DNS queries, built byte by byte for the decoders' tests.

export function v4(text: string): number[] {
  return text.split(".").map(Number);
}

export function v6(groups: number[]): number[] {
  return groups.flatMap((g) => [g >> 8, g & 255]);
}

export function tcpHeader(src: number, dst: number, flags: number, options: number[] = []): number[] {
  const doff = (20 + options.length) / 4;
  return [src >> 8, src & 255, dst >> 8, dst & 255, 0, 0, 0, 1, 0, 0, 0, 0, doff << 4, flags, 0xfa, 0xf0, 0, 0, 0, 0, ...options];
}

export function udpHeader(src: number, dst: number, payloadLen: number): number[] {
  const len = 8 + payloadLen;
  return [src >> 8, src & 255, dst >> 8, dst & 255, len >> 8, len & 255, 0, 0];
}

export function ipv4(proto: number, src: string, dst: string, l4: number[], opts: { options?: number[]; frag?: number } = {}): Uint8Array {
  const options = opts.options ?? [];
  const ihl = (20 + options.length) / 4;
  const total = 20 + options.length + l4.length;
  const frag = opts.frag ?? 0x4000; // DF
  return Uint8Array.from([0x40 | ihl, 0, total >> 8, total & 255, 0x12, 0x34, frag >> 8, frag & 255, 64, proto, 0, 0, ...v4(src), ...v4(dst), ...options, ...l4]);
}

export function ipv6(next: number, src: number[], dst: number[], rest: number[]): Uint8Array {
  return Uint8Array.from([0x60, 0, 0, 0, rest.length >> 8, rest.length & 255, next, 64, ...v6(src), ...v6(dst), ...rest]);
}

export function dnsQuery(name: string, id = 0x1234): number[] {
  const q: number[] = [id >> 8, id & 255, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const label of name.split(".")) {
    if (!label) continue;
    q.push(label.length, ...[...label].map((c) => c.charCodeAt(0)));
  }
  q.push(0, 0, 1, 0, 1); // root, QTYPE A, QCLASS IN
  return q;
}
