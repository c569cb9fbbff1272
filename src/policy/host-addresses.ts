// This host's own addresses, for the guard's "this host" row: every address of proxywall's own
// interfaces, read again at most once a second (interfaces come and go; a read costs a netlink
// round trip, and the proxy decides on every request).
import { carriedForm, parseIP } from "./address.ts";

const HOST_CACHE_MS = 1000;

// Reading the clock on every decision cost a tenth of the decision's time, so one unref'd timer,
// shared by every policy, counts the seconds instead, and a decision compares two numbers.
let hostEpoch = 0;
let ticking = false;
function currentEpoch(): number {
  if (!ticking) {
    ticking = true;
    setInterval(() => {
      hostEpoch++;
    }, HOST_CACHE_MS).unref();
  }
  return hostEpoch;
}

export class HostAddresses {
  /** IPv4 addresses (unsigned), with the IPv4 addresses that IPv6 forms of this host carry. */
  private v4 = new Set<number>();
  /** Other IPv6 addresses, four unsigned words each, one after another. */
  private v6: number[] = [];
  private readAt = -1;

  constructor(private readonly read: () => string[]) {}

  /** Reads the list again when the second has changed since it was last read. */
  refresh(): void {
    const now = currentEpoch();
    if (now === this.readAt) return;
    this.readAt = now;
    const v4 = new Set<number>();
    const v6: number[] = [];
    for (const a of this.read()) {
      const ip = parseIP(a.replace(/%.*$/, ""));
      if (!ip) continue;
      if (ip.v === 4) v4.add(ip.n);
      else if (carriedForm(ip.w[0], ip.w[1], ip.w[2], ip.w[3]) !== null) v4.add(ip.w[3]);
      else v6.push(ip.w[0], ip.w[1], ip.w[2], ip.w[3]);
    }
    this.v4 = v4;
    this.v6 = v6;
  }

  /** Whether an IPv4 address (unsigned) is this host's; call refresh() first. */
  hasV4(n: number): boolean {
    return this.v4.has(n);
  }

  /** Whether an IPv6 address (four unsigned words) is this host's; call refresh() first. */
  hasV6(w0: number, w1: number, w2: number, w3: number): boolean {
    const v6 = this.v6;
    for (let i = 0; i < v6.length; i += 4) if (v6[i] === w0 && v6[i + 1] === w1 && v6[i + 2] === w2 && v6[i + 3] === w3) return true;
    return false;
  }
}
