// The pure parts of CMD's containment: the seccomp filter (run by a small classic-BPF interpreter
// on made-up seccomp_data), --allow-socket-family, the capability masks, NSpid, --user's groups.
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { buildFilter, parseFamilies } from "../src/sys/seccomp.ts";
import { capNames, capsCmdWouldKeep, capSets, KEPT_MASK, maskOf, WALL_CAPS } from "../src/sys/caps.ts";
import { statusIds } from "../src/monitor/process-info.ts";
import { supplementaryGroups } from "../src/sandbox/cmd.ts";
import { tempDir } from "./support/temp.ts";

/** Runs a filter of LD_W_ABS, JEQ_K and RET_K (all buildFilter emits) on seccomp_data. */
function run(filter: Uint8Array, arch: number, nr: number, arg0: number): number {
  const data = new DataView(new ArrayBuffer(64));
  data.setUint32(0, nr, true);
  data.setUint32(4, arch, true);
  data.setUint32(16, arg0 >>> 0, true);
  data.setUint32(20, 0xdeadbeef, true); // high half of args[0]: the kernel ignores it for an int
  const prog = new DataView(filter.buffer);
  let a = 0;
  for (let pc = 0; pc < filter.length / 8; pc++) {
    const code = prog.getUint16(pc * 8, true);
    const jt = prog.getUint8(pc * 8 + 2);
    const jf = prog.getUint8(pc * 8 + 3);
    const k = prog.getUint32(pc * 8 + 4, true);
    if (code === 0x20) a = data.getUint32(k, true);
    else if (code === 0x15) pc += a === k ? jt : jf;
    else if (code === 0x06) return k;
    else throw new Error(`unexpected opcode ${code}`);
  }
  throw new Error("fell off the end");
}

const ALLOW = 0x7fff0000;
const EAFNOSUPPORT = 0x00050000 | 97;
const ENOSYS = 0x00050000 | 38;
const X86_64 = 0xc000003e;
const AARCH64 = 0xc00000b7;
const I386 = 0x40000003;
const ARM = 0x40000028;

test("socket and socketpair: unix, inet, inet6, netlink pass; vsock, packet and the rest get EAFNOSUPPORT, on every ABI", () => {
  const f = buildFilter([]);
  for (const [arch, socket, pair] of [[X86_64, 41, 53], [X86_64, 0x40000029, 0x40000035], [AARCH64, 198, 199], [I386, 359, 360], [ARM, 281, 288]] as const) {
    for (const nr of [socket, pair]) {
      for (const fam of [1, 2, 10, 16]) expect({ arch, nr, fam, r: run(f, arch, nr, fam) }).toEqual({ arch, nr, fam, r: ALLOW });
      for (const fam of [40, 17, 31, 29, 44, 0, 63]) expect({ arch, nr, fam, r: run(f, arch, nr, fam) }).toEqual({ arch, nr, fam, r: EAFNOSUPPORT });
    }
    expect(run(f, arch, 425, 0)).toBe(ENOSYS); // io_uring_setup
  }
  // Other system calls pass whatever their first argument.
  expect(run(f, X86_64, 42, 40)).toBe(ALLOW); // connect
  expect(run(f, AARCH64, 203, 40)).toBe(ALLOW);
  // socketcall: its SYS_SOCKET and SYS_SOCKETPAIR cannot be checked, so they are refused; others pass.
  expect(run(f, I386, 102, 1)).toBe(EAFNOSUPPORT);
  expect(run(f, I386, 102, 8)).toBe(EAFNOSUPPORT);
  expect(run(f, I386, 102, 3)).toBe(ALLOW);
  // An ABI the filter does not know gets nothing.
  expect(run(f, 0xc0000016, 41, 2)).toBe(ENOSYS);
});

test("--allow-socket-family adds families to the filter", () => {
  const f = buildFilter(parseFamilies("vsock,17") as number[]);
  expect(run(f, X86_64, 41, 40)).toBe(ALLOW);
  expect(run(f, X86_64, 41, 17)).toBe(ALLOW);
  expect(run(f, X86_64, 41, 31)).toBe(EAFNOSUPPORT);
  expect(parseFamilies("AF_VSOCK, packet")).toEqual([40, 17]);
  expect(parseFamilies("inet,unix")).toEqual([]);
  expect(parseFamilies("pigeon")).toContain('unknown socket family "pigeon"');
  expect(parseFamilies("64")).toContain("unknown socket family");
});

test("capabilities: none that reaches the wall is kept; what --keep-caps would leave a CMD", () => {
  expect(KEPT_MASK & maskOf(WALL_CAPS)).toBe(0n);
  expect(capNames(maskOf(["NET_ADMIN", "BPF"]))).toEqual(["CAP_NET_ADMIN", "CAP_BPF"]);
  const status = "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000001000\n";
  const sets = capSets(status);
  expect(sets.bnd).toBe(0x1ffffffffffn);
  expect(sets.amb).toBe(0x1000n);
  expect(capNames(capsCmdWouldKeep(sets, 0, 0))).toContain("CAP_SYS_ADMIN");
  expect(capsCmdWouldKeep(sets, 0, 1000)).toBe(0n); // root to another user: the kernel clears them
  expect(capNames(capsCmdWouldKeep(sets, 1000, 1000))).toEqual(["CAP_NET_ADMIN"]); // ambient stays
});

test("NSpid: the innermost pid; uid", () => {
  expect(statusIds("Name:\tsh\nUid:\t65534\t65534\t65534\t65534\nNSpid:\t4242\t7\n")).toEqual({ uid: 65534, nsPid: 7 });
  expect(statusIds("Uid:\t0\t0\t0\t0\nNSpid:\t4242\n")).toEqual({ uid: 0, nsPid: 4242 });
  expect(statusIds("Uid:\t0\t0\t0\t0\n")).toEqual({ uid: 0, nsPid: null });
});

test("--user's groups: its gid and the groups that list its name", () => {
  using dir = tempDir("pw-groups-");
  writeFileSync(dir.path("passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
  writeFileSync(dir.path("group"), "root:x:0:\nalice:x:1000:\ndocker:x:999:bob,alice\nwheel:x:10:bob\n");
  expect(supplementaryGroups({ uid: 1000, gid: 1000 }, dir.path("passwd"), dir.path("group"))).toEqual([1000, 999]);
  expect(supplementaryGroups({ uid: 4321, gid: 4321 }, dir.path("passwd"), dir.path("group"))).toEqual([4321]);
});
