// Kernel-log sources, the fallback where NFLOG cannot work: /dev/kmsg read from its end (no
// history replay), and `dmesg --follow-new` as the last resort. Both deliver text, which
// recordFields() turns into the fields of proxywall's records. They see sandbox packets only where
// the kernel writes LOG lines from other namespaces (initial namespace with
// net.netfilter.nf_log_all_netns = 1).
import { closeSync, constants, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { kernelRecord } from "../kernel-log/kmsg-record.ts";
import { LineSplitter, MAX_LINE } from "../kernel-log/line-splitter.ts";
import { parseLogFields, type PacketFields } from "../kernel-log/log-fields.ts";
import type { PrefixMatcher } from "../kernel-log/log-prefix.ts";
import { libc } from "../sys/libc.ts";
import { findTool, ownChildren } from "../sys/tools.ts";

const SYSCTL = "/proc/sys/net/netfilter/nf_log_all_netns";

export interface Usability {
  ok: boolean;
  /** What is missing, in words for a degraded line. */
  why: string;
}

/** Whether LOG lines from a sandbox namespace reach the kernel log at all. */
export function kernelLogReachable(): Usability {
  if (!existsSync(SYSCTL)) {
    return { ok: false, why: "net.netfilter.nf_log_all_netns is absent: proxywall is not in the initial network namespace (a container), where the kernel never writes other namespaces' packet logs" };
  }
  const value = readFileSync(SYSCTL, "utf8").trim();
  if (value !== "1") return { ok: false, why: `net.netfilter.nf_log_all_netns is ${value}: the kernel drops LOG lines from sandbox namespaces (sysctl -w net.netfilter.nf_log_all_netns=1 turns it on host-wide)` };
  return { ok: true, why: "" };
}

/** Whether /dev/kmsg can be opened for reading (CAP_SYSLOG, and a runtime that allows it). */
export function kmsgUsable(): Usability {
  try {
    closeSync(openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK));
  } catch (e) {
    return { ok: false, why: `/dev/kmsg cannot be read (${(e as NodeJS.ErrnoException).code}): needs CAP_SYSLOG and a runtime that allows the device` };
  }
  return { ok: true, why: "" };
}

/**
 * Kernel-log text, in chunks, to the fields of each record `matcher` accepts and the record's own
 * time: the monitor attributes the packet first and then builds its event once, as the watch
 * thread does for NFLOG. What is not such a record, or does not parse, is passed over
 * (`proxywall parse` counts those; KernelLogParser).
 */
export function recordFields(matcher: PrefixMatcher, onRecord: (fields: PacketFields, logTime: string | null) => void): (text: string) => void {
  const splitter = new LineSplitter(
    (line) => {
      // The splitter's marker filter lets through more than it must (a line carried across chunks).
      if (line.indexOf(matcher.marker) === -1) return;
      const record = kernelRecord(line);
      const m = record && matcher.match(record.message);
      const parsed = m && parseLogFields(m.rest);
      if (parsed && parsed.ok) onRecord(parsed.fields, record.logTime);
    },
    MAX_LINE,
    matcher.marker,
  );
  return (text) => splitter.push(text);
}

export interface LineSource {
  stats: { lost: number };
  /** Delivers what the kernel has written but the reader has not picked up yet. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

const SEEK_END = 2;

/**
 * Follows /dev/kmsg from its current end. Each read returns whole records; EPIPE means records
 * were overwritten before we read them: counted, and reading goes on from the next one.
 */
export function openKmsg(onText: (text: string) => void): LineSource {
  const c = libc();
  const fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
  c.lseek(fd, 0, SEEK_END); // skip history
  const stats = { lost: 0 };
  let stopped = false;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const decoder = new TextDecoder();
  const loop = (async () => {
    while (!stopped) {
      reader = Bun.file(fd).stream().getReader() as ReadableStreamDefaultReader<Uint8Array>;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          onText(decoder.decode(value, { stream: true }));
        }
        if (!stopped) await Bun.sleep(50);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EPIPE") stats.lost++;
        else if (!stopped) await Bun.sleep(50);
      }
    }
  })();
  return {
    stats,
    async drain() {
      // The stream polls; a record written just before CMD exited may still wait in the kernel.
      const buf = Buffer.alloc(8192);
      for (let i = 0; i < 10_000; i++) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === "EPIPE") {
            stats.lost++;
            continue;
          }
          break; // EAGAIN: nothing more
        }
        if (n <= 0) break;
        onText(decoder.decode(buf.subarray(0, n), { stream: true }));
      }
    },
    async close() {
      stopped = true;
      await reader?.cancel().catch(() => {});
      await Promise.race([loop, Bun.sleep(500)]);
      c.close(fd);
    },
  };
}

/** `dmesg --follow-new`: for where /dev/kmsg cannot be opened directly but dmesg can read the log. */
export function openDmesg(onText: (text: string) => void, onEnd: (why: string) => void): LineSource {
  const dmesg = findTool("dmesg");
  if (!dmesg) throw new Error("dmesg not found (util-linux)");
  const p = Bun.spawn([dmesg, "--follow-new", "--raw"], { stdout: "pipe", stderr: "pipe" });
  ownChildren.add(p.pid);
  let stopped = false;
  const decoder = new TextDecoder();
  const loop = (async () => {
    for await (const chunk of p.stdout) onText(decoder.decode(chunk, { stream: true }));
    // dmesg that cannot follow prints the buffer once and exits: that is no monitor.
    const code = await p.exited;
    ownChildren.delete(p.pid);
    if (!stopped) onEnd(`dmesg --follow-new ended (exit ${code}): ${(await new Response(p.stderr).text()).trim() || "no reason given"}`);
  })();
  return {
    stats: { lost: 0 },
    async drain() {
      // dmesg forwards what the kernel wrote within its own poll; give it that moment.
      await Bun.sleep(100);
    },
    async close() {
      stopped = true;
      p.kill();
      await Promise.race([loop, Bun.sleep(500)]);
    },
  };
}
