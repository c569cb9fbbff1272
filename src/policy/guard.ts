// The guard: address ranges and names refused with no policy at all. "never" rows are refused
// whatever the rules say (and in audit mode too); "unless allowed" rows are refused unless an allow
// rule names the address, or a CIDR inside the row, explicitly (a name rule or a wider CIDR such as
// 0.0.0.0/0 does not count). IPv6 forms that carry an IPv4 address are checked as that address.
import { type Cidr, type IP, carriedIPv4, formatCidr, parseCidr } from "./address.ts";
import { type Verdict, guardVerdict } from "./verdict.ts";

export type GuardKind = "never" | "unless-allowed";

export interface GuardRow {
  /** What the range is, as the verdict names it: "loopback", "private", ... */
  label: string;
  kind: GuardKind;
  cidrs: readonly Cidr[];
}

function cidrs(...texts: string[]): Cidr[] {
  return texts.map((t) => {
    const c = parseCidr(t);
    if ("error" in c) throw new Error(`guard table: ${c.error}`);
    return c;
  });
}

/** In the order checked: the first row that holds an address names it. */
export const GUARD_ROWS: readonly GuardRow[] = [
  { label: "cloud metadata", kind: "never", cidrs: cidrs("169.254.169.254", "fd00:ec2::254", "100.100.100.200") },
  { label: "unspecified", kind: "never", cidrs: cidrs("0.0.0.0/8", "::") },
  { label: "loopback", kind: "never", cidrs: cidrs("127.0.0.0/8", "::1") },
  { label: "link-local", kind: "never", cidrs: cidrs("169.254.0.0/16", "fe80::/10") },
  { label: "multicast", kind: "never", cidrs: cidrs("224.0.0.0/4", "ff00::/8") },
  { label: "broadcast", kind: "never", cidrs: cidrs("255.255.255.255") },
  { label: "private", kind: "unless-allowed", cidrs: cidrs("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10") },
  { label: "shared address space (CGNAT)", kind: "unless-allowed", cidrs: cidrs("100.64.0.0/10") },
  { label: "documentation", kind: "unless-allowed", cidrs: cidrs("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20") },
  { label: "benchmarking", kind: "unless-allowed", cidrs: cidrs("198.18.0.0/15", "2001:2::/48") },
  { label: "reserved", kind: "unless-allowed", cidrs: cidrs("240.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24", "100::/64", "2001::/23", "2002::/16") },
];

/** Names that reach a metadata service, whatever they resolve to here. */
export const METADATA_NAMES: ReadonlySet<string> = new Set([
  "metadata.google.internal",
  "metadata.goog",
  "metadata",
  "instance-data",
  "instance-data.ec2.internal",
  "metadata.azure.internal",
  "metadata.tencentyun.com",
]);

/** RFC 6761: `localhost` and every name under it are loopback, whatever a resolver says. */
export function isLocalhostName(name: string): boolean {
  return name === "localhost" || name.endsWith(".localhost");
}

export interface GuardHit {
  row: GuardRow;
  cidr: Cidr;
  /** Set when the address was an IPv6 form carrying this IPv4 address. */
  via: string | null;
}

// Flattened for the hot path: IPv4 rows as (base, mask) pairs, IPv6 rows as four words each, all
// as int32 (what `&` gives), so that every comparison is between small integers. Each entry keeps
// the reason and the verdicts it gives when the address is not an IPv6 form of another, made once.
export interface GuardEntry {
  row: GuardRow;
  cidr: Cidr;
  never: boolean;
  /** loopback or unspecified: with the proxy's port, the proxy's own door. */
  local: boolean;
  /** `guard: loopback 127.0.0.0/8` */
  reason: string;
  /** The verdict of a "never" row, or of an "unless allowed" row that no address rule lifted. */
  verdict: Verdict;
}
interface V4Entry extends GuardEntry {
  base: number;
  mask: number;
}
interface V6Entry extends GuardEntry {
  w: readonly number[];
  m: readonly number[];
}
function entry(row: GuardRow, c: Cidr): GuardEntry {
  const reason = `guard: ${row.label} ${formatCidr(c)}`;
  const never = row.kind === "never";
  const local = row.label === "loopback" || row.label === "unspecified";
  return { row, cidr: c, never, local, reason, verdict: guardVerdict(never ? reason : `${reason}, unless a rule allows it by address or CIDR`) };
}
const V4: V4Entry[] = [];
const V6: V6Entry[] = [];
for (const row of GUARD_ROWS) {
  for (const c of row.cidrs) {
    if (c.ip.v === 4) V4.push({ ...entry(row, c), base: c.ip.n | 0, mask: c.len === 0 ? 0 : 0xffffffff << (32 - c.len) });
    else {
      const m = [0, 1, 2, 3].map((i) => {
        const bits = Math.max(0, Math.min(32, c.len - 32 * i));
        return bits === 0 ? 0 : 0xffffffff << (32 - bits);
      });
      V6.push({ ...entry(row, c), w: c.ip.w.map((x) => x | 0), m });
    }
  }
}

/** The IPv4 entries that can hold an address, by its first octet (in row order). */
const V4_BY_OCTET: V4Entry[][] = Array.from({ length: 256 }, (_, octet) =>
  V4.filter((e) => ((octet << 24) & e.mask & 0xff000000) === (e.base & 0xff000000)),
);

/** The first guard entry holding an IPv4 address (unsigned), or null. */
export function guardEntryV4(n: number): GuardEntry | null {
  const list = V4_BY_OCTET[n >>> 24]!;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if ((n & e.mask) === e.base) return e;
  }
  return null;
}

/** The IPv6 entries that can hold an address, by its first byte (in row order). */
const V6_BY_BYTE: V6Entry[][] = Array.from({ length: 256 }, (_, byte) => V6.filter((e) => ((byte << 24) & e.m[0]! & 0xff000000) === (e.w[0]! & 0xff000000)));

/** The first guard entry holding an IPv6 address itself (four unsigned words), or null. */
export function guardEntryV6(w0: number, w1: number, w2: number, w3: number): GuardEntry | null {
  const list = V6_BY_BYTE[w0 >>> 24]!;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if ((w0 & e.m[0]!) === e.w[0] && (w1 & e.m[1]!) === e.w[1] && (w2 & e.m[2]!) === e.w[2] && (w3 & e.m[3]!) === e.w[3]) return e;
  }
  return null;
}

/** The first guard row holding `ip` (or the IPv4 address it carries), or null. */
export function guardRow(ip: IP): GuardHit | null {
  if (ip.v === 6) {
    const carried = carriedIPv4(ip.w);
    if (carried) return guardRowOf({ v: 4, n: carried.v4 }, carried.form);
  }
  return guardRowOf(ip, null);
}

/** The first guard row holding `ip` itself; `via` names the IPv6 form it came in, if any. */
export function guardRowOf(ip: IP, via: string | null): GuardHit | null {
  const e = ip.v === 4 ? guardEntryV4(ip.n) : guardEntryV6(ip.w[0], ip.w[1], ip.w[2], ip.w[3]);
  return e && { row: e.row, cidr: e.cidr, via };
}

/** The guard table as the README and `policy check --help` show it. */
export function guardTable(): string[] {
  return GUARD_ROWS.map((r) => `${r.label.padEnd(29)} ${(r.kind === "never" ? "never" : "unless allowed by address/CIDR").padEnd(31)} ${r.cidrs.map(formatCidr).join(", ")}`);
}
