// What to tell the user about a rejected connection, chosen from what the packet shows.
import type { Proto } from "./schema.ts";

export interface HintInput {
  proto: Proto;
  dstAddr: string;
  dstPort: number;
  /** The proxy the sandbox allows, when known: addresses of the host side and the port. */
  proxy?: { addrs: readonly string[]; port: number } | undefined;
}

export const HINTS = {
  dnsUdp:
    "DNS lookup over UDP: DNS must go through the proxy. Let the client resolve through the proxy (HTTPS_PROXY/CONNECT with a host name, socks5h, curl --proxy) instead of the local resolver; check /etc/resolv.conf and any hard-coded DNS server",
  dnsTcp:
    "DNS over TCP: DNS must go through the proxy. Use host names in proxied requests so the proxy resolves them, and do not point the resolver at a DNS server",
  udp: "UDP cannot pass an HTTP CONNECT proxy (QUIC/HTTP3, NTP, syslog, custom protocols): turn UDP off in the client (for Chromium --disable-quic) or use a TCP transport through the proxy",
  wrongProxyPort:
    "TCP to the proxy host on another port: the client has the wrong proxy port. Use the URL in HTTPS_PROXY/HTTP_PROXY exactly",
  tcp: "TCP connection that ignored the proxy: make the client honour HTTPS_PROXY/HTTP_PROXY. Node: NODE_USE_ENV_PROXY=1 (Node 24+) or a proxy agent; Java: -Dhttps.proxyHost=HOST -Dhttps.proxyPort=PORT (and http.*); gRPC: GRPC_PROXY as an http:// URL; Go, curl, Python requests, pip: honour HTTPS_PROXY already, check NO_PROXY",
} as const;

export function bypassHint(input: HintInput): string {
  if (input.dstPort === 53) return input.proto === "udp" ? HINTS.dnsUdp : HINTS.dnsTcp;
  if (input.proto === "udp") return HINTS.udp;
  if (input.proxy && input.proxy.addrs.includes(input.dstAddr) && input.dstPort !== input.proxy.port)
    return HINTS.wrongProxyPort;
  return HINTS.tcp;
}
