// The fields of a netfilter LOG message, the part after the prefix:
//   IN= OUT=vs-cap SRC=10.210.0.2 DST=198.51.100.7 LEN=60 ... PROTO=TCP SPT=51922 DPT=443 ... UID=0 GID=0
// IPv6 lines print addresses uncompressed; proxywall prints them in RFC 5952 form.
import { canonicalIPv6, isIPv4 } from "../net/ip-address.ts";
import type { Family, Proto } from "../events/schema.ts";

export interface PacketFields {
  proto: Proto;
  family: Family;
  srcAddr: string | null;
  srcPort: number | null;
  dstAddr: string;
  dstPort: number;
  uid: number | null;
  gid: number | null;
  outIf: string | null;
}

export type FieldsResult = { ok: true; fields: PacketFields } | { ok: false; why: "incomplete" | "other_proto" };

function port(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

function id(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n <= 4294967295 ? n : null;
}

function address(text: string | undefined): { addr: string; family: Family } | null {
  if (text === undefined) return null;
  if (text.includes(":")) {
    const addr = canonicalIPv6(text);
    return addr ? { addr, family: "ipv6" } : null;
  }
  return isIPv4(text) ? { addr: text, family: "ipv4" } : null;
}

export function parseLogFields(text: string): FieldsResult {
  const kv = new Map<string, string>();
  for (const token of text.split(" ")) {
    const eq = token.indexOf("=");
    if (eq <= 0) continue;
    const key = token.slice(0, eq);
    // The first of a repeated key counts (UDP lines carry a second LEN=).
    if (!kv.has(key)) kv.set(key, token.slice(eq + 1));
  }
  const protoText = kv.get("PROTO");
  const dst = address(kv.get("DST"));
  const dstPort = port(kv.get("DPT"));
  if (protoText !== undefined && protoText !== "TCP" && protoText !== "UDP") return { ok: false, why: "other_proto" };
  if (protoText === undefined || !dst || dstPort === null) return { ok: false, why: "incomplete" };
  const src = address(kv.get("SRC"));
  if (src && src.family !== dst.family) return { ok: false, why: "incomplete" };
  const out = kv.get("OUT");
  return {
    ok: true,
    fields: {
      proto: protoText === "TCP" ? "tcp" : "udp",
      family: dst.family,
      srcAddr: src?.addr ?? null,
      srcPort: port(kv.get("SPT")),
      dstAddr: dst.addr,
      dstPort,
      uid: id(kv.get("UID")),
      gid: id(kv.get("GID")),
      outIf: out ? out : null,
    },
  };
}
