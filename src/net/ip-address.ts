// Address text: validation and the canonical forms proxywall prints (RFC 5952 for IPv6).

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

export function ipv4ToInt(text: string): number {
  const p = text.split(".");
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

export function intToIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 32;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** The form netfilter LOG prints, eight groups of four hex digits: the common case, kept cheap. */
function uncompressedGroups(text: string): number[] | null {
  if (text.length !== 39) return null;
  const out = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let g = 0; g < 8; g++) {
    const at = g * 5;
    if (g < 7 && text.charCodeAt(at + 4) !== 58 /* : */) return null;
    let n = 0;
    for (let i = at; i < at + 4; i++) {
      const h = hexDigit(text.charCodeAt(i));
      if (h < 0) return null;
      n = n * 16 + h;
    }
    out[g] = n;
  }
  return out;
}

/** Eight 16-bit groups from IPv6 text (full, compressed, or with a dotted IPv4 tail), or null. */
export function ipv6Groups(text: string): number[] | null {
  if (text.length < 2 || text.length > 45) return null;
  const full = uncompressedGroups(text);
  if (full) return full;
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    const v4 = text.slice(lastColon + 1);
    if (!isIPv4(v4)) return null;
    const n = ipv4ToInt(v4);
    tail.push(n >>> 16, n & 0xffff);
    // Keep "::" whole when the dotted tail follows it directly; otherwise drop the lone colon.
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const parts = head.split("::");
  if (parts.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(parts[0]!);
  if (!left) return null;
  if (parts.length === 1) {
    const all = [...left, ...tail];
    return all.length === 8 ? all : null;
  }
  const right = parse(parts[1]!);
  if (!right) return null;
  const known = left.length + right.length + tail.length;
  if (known > 7) return null;
  return [...left, ...new Array<number>(8 - known).fill(0), ...right, ...tail];
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (2+) of zero groups as "::". */
export function formatIPv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses keep the dotted tail (RFC 5952 section 5).
  if (bestStart === 0 && bestLen === 5 && groups[5] === 0xffff) {
    return `::ffff:${intToIPv4(((groups[6]! << 16) | groups[7]!) >>> 0)}`;
  }
  let out = "";
  for (let i = 0; i < 8; ) {
    if (i === bestStart) {
      out += "::";
      i += bestLen;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLen) out += ":";
    out += groups[i]!.toString(16);
    i++;
  }
  return out;
}

/** Canonical IPv6 text (RFC 5952) or null when the text is not an IPv6 address. */
export function canonicalIPv6(text: string): string | null {
  const g = ipv6Groups(text);
  return g ? formatIPv6(g) : null;
}

export function isIPv6(text: string): boolean {
  return ipv6Groups(text) !== null;
}
