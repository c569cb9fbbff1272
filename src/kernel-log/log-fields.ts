// The fields of a netfilter LOG message, the part after the prefix:
//   IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 ... PROTO=TCP SPT=51922 DPT=443 ... UID=0 GID=0
// IPv6 lines print addresses uncompressed; proxywall prints them in RFC 5952 form.
import { canonicalIPv6, isIPv4 } from "../net/ip-address.ts";
import type { Family } from "../events/schema.ts";
import type { FiveTuple } from "../net/five-tuple.ts";

/** A packet's five-tuple, and what the kernel says of its socket (uid, gid) and way out. */
export interface PacketFields extends FiveTuple {
  uid: number | null;
  gid: number | null;
  outIf: string | null;
}

export type FieldsResult = { ok: true; fields: PacketFields } | { ok: false; why: "incomplete" | "other_proto" };

/** The decimal number in text[from, to): 1..maxDigits digits and at most max, else null. */
function decimalAt(text: string, from: number, to: number, maxDigits: number, max: number): number | null {
  if (from < 0 || to <= from || to - from > maxDigits) return null;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return n <= max ? n : null;
}

// A sandbox logs the same few addresses over and over (its own SRC on every record): remember the
// canonical form of recent IPv6 texts. Direct-mapped, fixed size; keys are stored as copies so that
// they never hold on to the chunk of log text they were cut from, and only up to the longest IPv6
// text (45 characters).
const V6_SLOTS = 64;
const V6_TEXT_MAX = 45;
const v6Keys: string[] = new Array<string>(V6_SLOTS).fill("");
const v6Values: (string | null)[] = new Array<string | null>(V6_SLOTS).fill(null);

function cachedCanonicalIPv6(text: string): string | null {
  const n = text.length;
  if (n > V6_TEXT_MAX) return null;
  const slot = (n * 7 + text.charCodeAt(n - 1) * 31 + text.charCodeAt(n - 2) * 3 + text.charCodeAt(n - 6)) & (V6_SLOTS - 1);
  if (v6Keys[slot] === text) return v6Values[slot]!;
  const addr = canonicalIPv6(text);
  v6Keys[slot] = `${text} `.slice(0, n);
  v6Values[slot] = addr;
  return addr;
}

function address(text: string): { addr: string; family: Family } | null {
  if (text.includes(":")) {
    const addr = cachedCanonicalIPv6(text);
    return addr ? { addr, family: "ipv6" } : null;
  }
  return isIPv4(text) ? { addr: text, family: "ipv4" } : null;
}

export function parseLogFields(text: string): FieldsResult {
  // Space-separated KEY=VALUE tokens; only the keys below matter, and the first of a repeated key
  // counts (UDP lines carry a second LEN=). One pass that notes where each value starts and ends
  // (-1: key absent); only the values that end up in the event are cut out.
  let proto = -1, protoEnd = -1;
  let dst = -1, dstEnd = -1;
  let dpt = -1, dptEnd = -1;
  let src = -1, srcEnd = -1;
  let spt = -1, sptEnd = -1;
  let uid = -1, uidEnd = -1;
  let gid = -1, gidEnd = -1;
  let out = -1, outEnd = -1;
  const n = text.length;
  for (let at = 0; at < n; ) {
    let end = text.indexOf(" ", at);
    if (end === -1) end = n;
    if (end - at >= 4) {
      switch (text.charCodeAt(at)) {
        case 68 /* D */:
          if (dst < 0 && text.startsWith("DST=", at)) {
            dst = at + 4;
            dstEnd = end;
          } else if (dpt < 0 && text.startsWith("DPT=", at)) {
            dpt = at + 4;
            dptEnd = end;
          }
          break;
        case 83 /* S */:
          if (src < 0 && text.startsWith("SRC=", at)) {
            src = at + 4;
            srcEnd = end;
          } else if (spt < 0 && text.startsWith("SPT=", at)) {
            spt = at + 4;
            sptEnd = end;
          }
          break;
        case 80 /* P */:
          if (proto < 0 && text.startsWith("PROTO=", at)) {
            proto = at + 6;
            protoEnd = end;
          }
          break;
        case 85 /* U */:
          if (uid < 0 && text.startsWith("UID=", at)) {
            uid = at + 4;
            uidEnd = end;
          }
          break;
        case 71 /* G */:
          if (gid < 0 && text.startsWith("GID=", at)) {
            gid = at + 4;
            gidEnd = end;
          }
          break;
        case 79 /* O */:
          if (out < 0 && text.startsWith("OUT=", at)) {
            out = at + 4;
            outEnd = end;
          }
          break;
      }
    }
    at = end + 1;
  }
  if (proto < 0) return { ok: false, why: "incomplete" };
  const tcp = protoEnd - proto === 3 && text.startsWith("TCP", proto);
  if (!tcp && !(protoEnd - proto === 3 && text.startsWith("UDP", proto))) return { ok: false, why: "other_proto" };
  const dstPort = decimalAt(text, dpt, dptEnd, 5, 65535);
  if (dstPort === null || dst < 0) return { ok: false, why: "incomplete" };
  const dstAddr = address(text.slice(dst, dstEnd));
  if (!dstAddr) return { ok: false, why: "incomplete" };
  const srcAddr = src < 0 ? null : address(text.slice(src, srcEnd));
  if (srcAddr && srcAddr.family !== dstAddr.family) return { ok: false, why: "incomplete" };
  return {
    ok: true,
    fields: {
      proto: tcp ? "tcp" : "udp",
      family: dstAddr.family,
      srcAddr: srcAddr ? srcAddr.addr : null,
      srcPort: decimalAt(text, spt, sptEnd, 5, 65535),
      dstAddr: dstAddr.addr,
      dstPort,
      uid: decimalAt(text, uid, uidEnd, 10, 4294967295),
      gid: decimalAt(text, gid, gidEnd, 10, 4294967295),
      outIf: out >= 0 && outEnd > out ? text.slice(out, outEnd) : null,
    },
  };
}
