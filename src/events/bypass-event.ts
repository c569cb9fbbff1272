// Builds the bypass_detect line from decoded packet fields, whichever source decoded them.
import type { PacketFields } from "../kernel-log/log-fields.ts";
import { bypassHint } from "./hints.ts";
import { REASON_BYPASS, type BypassDetect, type Source } from "./schema.ts";

export interface BypassContext {
  sandbox: string;
  source: Source;
  proxy?: { addrs: readonly string[]; port: number } | undefined;
}

export function nowTs(): string {
  return new Date().toISOString();
}

export function bypassEvent(ctx: BypassContext, f: PacketFields, logTime: string | null): BypassDetect {
  return {
    v: 1,
    event: "bypass_detect",
    ts: nowTs(),
    sandbox: ctx.sandbox,
    action: "reject",
    proto: f.proto,
    family: f.family,
    src_addr: f.srcAddr,
    src_port: f.srcPort,
    dst_addr: f.dstAddr,
    dst_port: f.dstPort,
    uid: f.uid,
    gid: f.gid,
    out_if: f.outIf,
    process: null,
    reason: REASON_BYPASS,
    hint: bypassHint({ proto: f.proto, dstAddr: f.dstAddr, dstPort: f.dstPort, proxy: ctx.proxy }),
    source: ctx.source,
    log_time: logTime,
  };
}
