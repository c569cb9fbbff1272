// The envelope around a kernel message, in each text form a kernel log reaches people:
//   /dev/kmsg     4,12377,1180427454,-;MESSAGE        (continuation lines start with a space)
//   dmesg         [ 1180.427454] MESSAGE   or   [Sun Nov 29 13:36:53 2026] MESSAGE (-T)
//   dmesg --notime, dmesg --raw        MESSAGE   /   <4>[ 1180.427454] MESSAGE   /   <4>MESSAGE
//   journalctl -k, syslog              Nov 29 13:36:53 host kernel: MESSAGE   (ISO dates too)

export type EnvelopeFormat = "kmsg" | "dmesg" | "syslog" | "plain";

export interface KernelRecord {
  format: EnvelopeFormat;
  /** The record's own timestamp as printed: seconds since boot, or the syslog date. */
  logTime: string | null;
  message: string;
}

const BRACKET_TIME = /^\[\s*([^\]]*)\]\s?/;
const SYSLOG = /^(\S+(?: +\S+ +\S+)?) +\S+ +kernel: /;
const SYSLOG_ISO = /^\d{4}-\d{2}-\d{2}T/;
const RAW_PRIORITY = /^<\d{1,3}>/;

function microsToSeconds(us: string): string {
  const padded = us.padStart(7, "0");
  return `${padded.slice(0, -6)}.${padded.slice(-6)}`;
}

/** End of the run of ASCII digits starting at `i`. */
function digitsEnd(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (!(c >= 48 && c <= 57)) return i;
    i++;
  }
}

/** A /dev/kmsg header `PRIORITY,SEQ,TIMESTAMP_US,FLAGS[,...];`: the record, or null. */
function kmsgRecord(line: string): KernelRecord | null {
  const prio = digitsEnd(line, 0);
  if (prio === 0 || prio > 3 || line.charCodeAt(prio) !== 44 /* , */) return null;
  const seq = digitsEnd(line, prio + 1);
  if (seq === prio + 1 || line.charCodeAt(seq) !== 44) return null;
  const us = digitsEnd(line, seq + 1);
  if (us === seq + 1 || line.charCodeAt(us) !== 44) return null;
  const semi = line.indexOf(";", us + 1);
  if (semi === -1) return null;
  return { format: "kmsg", logTime: microsToSeconds(line.slice(seq + 1, us)), message: line.slice(semi + 1) };
}

/** Strips the envelope from one line of kernel-log text; null for continuation lines. */
export function kernelRecord(line: string): KernelRecord | null {
  const c0 = line.charCodeAt(0);
  if (c0 === 32 || c0 === 9) return null; // kmsg continuation (" SUBSYSTEM=...") or wrapped text
  if (c0 >= 48 && c0 <= 57) {
    const k = kmsgRecord(line);
    if (k) return k;
  }
  if (c0 === 91 /* [ */) {
    const b = BRACKET_TIME.exec(line);
    if (b) return { format: "dmesg", logTime: b[1]!.trim(), message: line.slice(b[0].length) };
  }
  const kernelAt = line.indexOf(" kernel: ");
  if (kernelAt > 0) {
    const s = SYSLOG.exec(line);
    if (s && (s[0].length === kernelAt + 9 || SYSLOG_ISO.test(line))) {
      let message = line.slice(kernelAt + 9);
      // Classic syslog keeps the dmesg stamp: "kernel: [ 1180.427454] MESSAGE".
      const b = message.charCodeAt(0) === 91 ? BRACKET_TIME.exec(message) : null;
      if (b) message = message.slice(b[0].length);
      return { format: "syslog", logTime: s[1]!, message };
    }
  }
  if (c0 === 60 /* < */) {
    const r = RAW_PRIORITY.exec(line);
    if (r) {
      // `dmesg --raw` keeps the timestamp after the priority: "<4>[ 1180.427454] MESSAGE".
      const message = line.slice(r[0].length);
      const b = message.charCodeAt(0) === 91 ? BRACKET_TIME.exec(message) : null;
      if (b) return { format: "dmesg", logTime: b[1]!.trim(), message: message.slice(b[0].length) };
      return { format: "plain", logTime: null, message };
    }
  }
  return { format: "plain", logTime: null, message: line };
}
