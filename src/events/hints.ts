// What to tell the user about a rejected connection: chosen from the program behind it when it is
// known (node and its versions, python, java, go, curl, git, pip, npm), else from the packet.
import type { ProcessInfo, Proto } from "./schema.ts";

export interface HintInput {
  proto: Proto;
  dstAddr: string;
  dstPort: number;
  /** The proxy the sandbox allows, when known: addresses of the host side and the port. */
  proxy?: { addrs: readonly string[]; port: number } | undefined;
  /** The process behind the attempt, when attribution named it. */
  process?: ProcessInfo | undefined;
}

export const HINTS = {
  dnsUdp:
    "DNS lookup over UDP: DNS must go through the proxy. Let the client resolve through the proxy (HTTPS_PROXY/CONNECT with a host name, socks5h, curl --proxy) instead of the local resolver; check /etc/resolv.conf and any hard-coded DNS server",
  dnsTcp:
    "DNS over TCP: DNS must go through the proxy. Use host names in proxied requests so the proxy resolves them, and do not point the resolver at a DNS server",
  udp: "UDP cannot pass an HTTP CONNECT proxy (QUIC/HTTP3, NTP, syslog, custom protocols): turn UDP off in the client (for Chromium --disable-quic) or use a TCP transport through the proxy",
  other: "Only TCP through the HTTP CONNECT proxy leaves the sandbox: ICMP (ping, traceroute), UDP-Lite, SCTP and other IP protocols cannot pass it; test reachability with an HTTP request through the proxy instead",
  wrongProxyPort:
    "TCP to the proxy host on another port: the client has the wrong proxy port. Use the URL in HTTPS_PROXY/HTTP_PROXY exactly",
  tcp: "TCP connection that ignored the proxy: make the client honour HTTPS_PROXY/HTTP_PROXY. Node: NODE_USE_ENV_PROXY=1 (Node 24+) or a proxy agent; Java: -Dhttps.proxyHost=HOST -Dhttps.proxyPort=PORT (and http.*); gRPC: GRPC_PROXY as an http:// URL; Go, curl, Python requests, pip: honour HTTPS_PROXY already, check NO_PROXY",
} as const;

/** Programs with a hint of their own; `old-node` is Node before 22.21, whose fetch and http ignore the variables. */
export type Program = "node" | "old-node" | "python" | "pip" | "java" | "go" | "curl" | "git" | "npm";

const NODE_AGENT = "undici's EnvHttpProxyAgent (setGlobalDispatcher(new EnvHttpProxyAgent())) for fetch, a proxy agent (https-proxy-agent) for http/https";

/** Per program: why its connection went around the proxy, and why it resolved a name itself. */
export const PROGRAM_HINTS: Record<Program, { tcp: string; dns: string }> = {
  node: {
    tcp: `Node ignored the proxy: Node 24+ (and 22.21+) honours HTTPS_PROXY for fetch and http(s) only with NODE_USE_ENV_PROXY=1 (proxywall sets it: check the process kept its environment); on older Node use ${NODE_AGENT}`,
    dns: `Node resolved the name itself (dns.lookup) to connect directly: with the proxy in use, the proxy resolves it. Node 24+ (and 22.21+): NODE_USE_ENV_PROXY=1; older Node: ${NODE_AGENT}`,
  },
  "old-node": {
    tcp: `This Node (before 22.21) ignores HTTPS_PROXY and NODE_USE_ENV_PROXY in fetch and http: use ${NODE_AGENT}, or Node 24 with NODE_USE_ENV_PROXY=1`,
    dns: `This Node (before 22.21) resolved the name itself because its fetch/http ignore HTTPS_PROXY: use ${NODE_AGENT}, or Node 24 with NODE_USE_ENV_PROXY=1, so the proxy resolves names`,
  },
  python: {
    tcp: "Python ignored the proxy: requests, urllib and pip honour HTTPS_PROXY; raw sockets, asyncio streams, and httpx/aiohttp with trust_env=False do not: use a proxy-aware client (httpx trust_env=True, aiohttp trust_env=True) and check NO_PROXY",
    dns: "Python resolved the name itself (socket.getaddrinfo) to connect directly: with requests or urllib through HTTPS_PROXY the proxy resolves it; raw sockets and asyncio streams never use the proxy",
  },
  pip: {
    tcp: "pip ignored the proxy: it honours HTTPS_PROXY; check --proxy, PIP_PROXY, NO_PROXY and a pip.conf that sets proxy or an index on a direct address",
    dns: "pip resolved a name itself: it does so only when it does not use the proxy; check --proxy, PIP_PROXY, NO_PROXY and pip.conf",
  },
  java: {
    tcp: "Java ignores HTTPS_PROXY: pass -Dhttps.proxyHost=HOST -Dhttps.proxyPort=PORT -Dhttp.proxyHost=HOST -Dhttp.proxyPort=PORT (for example in JAVA_TOOL_OPTIONS), or -Djava.net.useSystemProxies=true; Gradle and Maven take the same properties (gradle.properties systemProp.*, settings.xml <proxy>)",
    dns: "Java resolved the name itself because it ignores HTTPS_PROXY: with -Dhttps.proxyHost/-Dhttps.proxyPort (JAVA_TOOL_OPTIONS) the proxy resolves names",
  },
  go: {
    tcp: "Go ignored the proxy: net/http honours HTTPS_PROXY through http.ProxyFromEnvironment, but a custom Transport with Proxy: nil, a raw net.Dial, or NO_PROXY bypasses it; the go command itself honours HTTPS_PROXY (GOPROXY fetches go through it)",
    dns: "Go resolved the name itself to dial directly: with http.ProxyFromEnvironment in the Transport the proxy resolves it",
  },
  curl: {
    tcp: "curl ignored the proxy: it honours HTTPS_PROXY/http_proxy unless told not to: drop --noproxy, NO_PROXY entries and --proxy '' (or a .curlrc that sets them)",
    dns: "curl resolved the name itself because it did not use the proxy (--noproxy, NO_PROXY, --proxy ''): through the proxy it sends the name in CONNECT and never resolves it",
  },
  git: {
    tcp: "git ignored the proxy: https:// remotes honour HTTPS_PROXY and http.proxy, but git://, ssh:// and scp-like (git@host:) remotes cannot pass an HTTP proxy: use https:// URLs (git config url.https://HOST/.insteadOf git@HOST:)",
    dns: "git resolved a remote's name itself: ssh:// and git:// remotes connect directly; use https:// URLs, which go through HTTPS_PROXY",
  },
  npm: {
    tcp: "npm ignored the proxy: set https-proxy and proxy (npm config, .npmrc) or keep HTTPS_PROXY; check noproxy in .npmrc, and install scripts that download with their own client",
    dns: "npm resolved a name itself: check https-proxy/proxy/noproxy in .npmrc, and install scripts that download with their own client",
  },
};

const base = (p: string | null | undefined) => (p ? (p.split("/").pop() ?? p).replace(/ \(deleted\)$/, "") : "");

/** Node's major and minor version where the path shows it (nvm, n, fnm, volta, official tarballs). */
function nodeVersion(path: string | null | undefined): [number, number] | null {
  const m = /(?:^|[/-])v?(\d{1,2})\.(\d{1,3})\.\d+(?:[/-]|$)/.exec(path ?? "");
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** The program behind an attempt, from its executable and command line; null when none has a hint. */
export function programOf(process: ProcessInfo | undefined): Program | null {
  if (!process || !process.resolved) return null;
  const exe = base(process.exe);
  const argv0 = base(process.cmdline[0]);
  const args = process.cmdline.slice(1, 4).join(" ");
  if (/^(node|nodejs)(\d+)?$/.test(exe)) {
    if (/npm-cli\.js|\/npm\b|npx-cli\.js/.test(args) || argv0 === "npm" || argv0 === "npx") return "npm";
    const v = nodeVersion(process.exe) ?? nodeVersion(process.cmdline[0]);
    return v && (v[0] < 22 || (v[0] === 22 && v[1] < 21)) ? "old-node" : "node";
  }
  if (/^python(\d(\.\d+)?)?$/.test(exe)) return /^-m pip\b|\/pip3?(\s|$)/.test(args) || /^pip/.test(argv0) ? "pip" : "python";
  if (exe === "java") return "java";
  if (exe === "go") return "go";
  if (exe === "curl") return "curl";
  if (exe === "git" || /^git-remote-/.test(exe)) return "git";
  return null;
}

export function bypassHint(input: HintInput): string {
  const dns = input.dstPort === 53 && (input.proto === "udp" || input.proto === "tcp");
  const program = programOf(input.process);
  if (program && (dns || input.proto === "tcp")) return dns ? PROGRAM_HINTS[program].dns : PROGRAM_HINTS[program].tcp;
  if (dns) return input.proto === "udp" ? HINTS.dnsUdp : HINTS.dnsTcp;
  if (input.proto === "udp") return HINTS.udp;
  if (input.proto !== "tcp") return HINTS.other;
  if (input.proxy && input.proxy.addrs.includes(input.dstAddr) && input.dstPort !== input.proxy.port)
    return HINTS.wrongProxyPort;
  return HINTS.tcp;
}
