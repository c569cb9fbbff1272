// Kernel-log text to the fields of proxywall's records (recordFields, src/monitor/kmsg-source.ts),
// from the /dev/kmsg records captured in test/fixtures, in chunks cut anywhere.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PacketFields } from "../src/kernel-log/log-fields.ts";
import { exactPrefix } from "../src/kernel-log/log-prefix.ts";
import { recordFields } from "../src/monitor/kmsg-source.ts";

const KMSG = readFileSync(join(import.meta.dir, "fixtures/kmsg-records.txt"), "utf8");

function read(text: string, prefix: string, chunk = text.length): [PacketFields, string | null][] {
  const got: [PacketFields, string | null][] = [];
  const push = recordFields(exactPrefix(prefix), (fields, logTime) => got.push([fields, logTime]));
  for (let at = 0; at < text.length; at += chunk) push(text.slice(at, at + chunk));
  return got;
}

describe("recordFields", () => {
  test("each record of the sandbox's prefix: its fields and its own time; another tool's line is passed over", () => {
    const got = read(KMSG, "proxywall:abcd1234:");
    expect(got).toHaveLength(5);
    expect(got[0]).toEqual([
      { proto: "udp", family: "ipv4", srcAddr: "10.210.0.2", srcPort: 35637, dstAddr: "10.210.0.1", dstPort: 53, uid: 0, gid: 0, outIf: "vs-cap" },
      "1180.427454",
    ]);
    expect(got[1]![0]).toMatchObject({ proto: "tcp", family: "ipv6", srcAddr: "fd00:210::2", dstAddr: "fd00:210::1", dstPort: 443 });
    expect(got.map(([, t]) => t)).toEqual(["1180.427454", "1180.545331", "1181.561056", "1182.680216", "1316.057048"]);
  });

  test("the same records wherever the chunks end", () => {
    const whole = read(KMSG, "proxywall:abcd1234:");
    for (const chunk of [1, 7, 64, 255, 256]) expect(read(KMSG, "proxywall:abcd1234:", chunk)).toEqual(whole);
  });

  test("another sandbox's prefix: nothing", () => {
    expect(read(KMSG, "proxywall:0000ffff:")).toEqual([]);
  });
});
