// A seccomp filter for CMD: sockets of families the fence cannot see are refused. The fence is
// netfilter, which sees IPv4 and IPv6; AF_UNIX and AF_NETLINK never leave the machine (and
// netlink's firewall messages need CAP_NET_ADMIN, which CMD lacks). Everything else (AF_VSOCK to
// the hypervisor, AF_PACKET, AF_BLUETOOTH, AF_CAN, AF_TIPC, AF_RDS, AF_XDP...) would be a way out
// the fence never sees, so socket() and socketpair() fail with EAFNOSUPPORT, the error a program
// gets from a kernel without that family and handles as such.
//
// The filter is classic BPF on seccomp_data {nr: u32 at 0, arch: u32 at 4, ip: u64 at 8,
// args: u64[6] at 16}. A family is an int: the kernel reads the low 32 bits of args[0], which on
// these little-endian ABIs are the 4 bytes at offset 16. Covered ABIs: x86_64 (and x32, whose
// numbers carry bit 30), i386 on x86_64, aarch64, and 32-bit ARM on aarch64. socketcall(2) (i386,
// ARM OABI) passes its arguments in memory a filter cannot read: its socket and socketpair calls
// are refused whole. io_uring can make sockets without a system call a filter sees
// (IORING_OP_SOCKET), so io_uring_setup fails with ENOSYS and programs use plain system calls.
import { ptr } from "bun:ffi";
import { errno, libc } from "./libc.ts";

export const AF = { unix: 1, inet: 2, inet6: 10, netlink: 16 } as const;
export const ALWAYS_ALLOWED_FAMILIES: readonly number[] = Object.values(AF);

/** Families by name, for --allow-socket-family (linux/socket.h). */
export const FAMILY_NUMBERS: Readonly<Record<string, number>> = {
  ax25: 3, ipx: 4, appletalk: 5, x25: 9, key: 15, packet: 17, rds: 21, llc: 26, ib: 27, mpls: 28, can: 29,
  tipc: 30, bluetooth: 31, rxrpc: 33, isdn: 34, phonet: 35, ieee802154: 36, caif: 37, alg: 38, vsock: 40,
  kcm: 41, qipcrtr: 42, smc: 43, xdp: 44, mctp: 45,
};

const EAFNOSUPPORT = 97;
const ENOSYS = 38;

const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;

// BPF opcodes
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const RET_K = 0x06;

interface Abi {
  arch: number;
  socket: number[];
  socketcall: number | null;
  ioUringSetup: number;
}

export const ABIS: readonly Abi[] = [
  // x86_64: socket 41, socketpair 53; x32 the same with __X32_SYSCALL_BIT.
  { arch: 0xc000003e, socket: [41, 53, 0x40000000 + 41, 0x40000000 + 53], socketcall: null, ioUringSetup: 425 },
  // i386: socket 359, socketpair 360, socketcall 102.
  { arch: 0x40000003, socket: [359, 360], socketcall: 102, ioUringSetup: 425 },
  // aarch64 (the generic table): socket 198, socketpair 199.
  { arch: 0xc00000b7, socket: [198, 199], socketcall: null, ioUringSetup: 425 },
  // 32-bit ARM: socket 281, socketpair 288; socketcall 102 (OABI).
  { arch: 0x40000028, socket: [281, 288], socketcall: 102, ioUringSetup: 425 },
];

type Ins = { code: number; k: number; jt?: string; jf?: string } | { label: string };

/**
 * The filter as 8-byte sock_filter entries: per ABI, socket/socketpair go to the family check,
 * io_uring_setup gets ENOSYS, socketcall's SYS_SOCKET (1) and SYS_SOCKETPAIR (8) get
 * EAFNOSUPPORT; an ABI not listed gets ENOSYS for everything (none can occur on the listed hosts).
 */
export function buildFilter(allowedFamilies: readonly number[]): Uint8Array {
  const families = [...new Set([...ALWAYS_ALLOWED_FAMILIES, ...allowedFamilies])];
  const p: Ins[] = [{ code: LD_W_ABS, k: 4 }];
  ABIS.forEach((abi, i) => p.push({ code: JEQ_K, k: abi.arch, jt: `abi${i}` }));
  p.push({ code: RET_K, k: SECCOMP_RET_ERRNO | ENOSYS });
  ABIS.forEach((abi, i) => {
    p.push({ label: `abi${i}` }, { code: LD_W_ABS, k: 0 });
    for (const nr of abi.socket) p.push({ code: JEQ_K, k: nr, jt: "family" });
    p.push({ code: JEQ_K, k: abi.ioUringSetup, jt: "enosys" });
    if (abi.socketcall !== null) p.push({ code: JEQ_K, k: abi.socketcall, jt: "socketcall" });
    p.push({ code: RET_K, k: SECCOMP_RET_ALLOW });
  });
  p.push({ label: "family" }, { code: LD_W_ABS, k: 16 });
  for (const f of families) p.push({ code: JEQ_K, k: f, jt: "allow" });
  p.push({ code: RET_K, k: SECCOMP_RET_ERRNO | EAFNOSUPPORT });
  p.push({ label: "socketcall" }, { code: LD_W_ABS, k: 16 }, { code: JEQ_K, k: 1, jt: "eafnosupport" }, { code: JEQ_K, k: 8, jt: "eafnosupport" });
  p.push({ label: "allow" }, { code: RET_K, k: SECCOMP_RET_ALLOW });
  p.push({ label: "eafnosupport" }, { code: RET_K, k: SECCOMP_RET_ERRNO | EAFNOSUPPORT });
  p.push({ label: "enosys" }, { code: RET_K, k: SECCOMP_RET_ERRNO | ENOSYS });
  return assemble(p);
}

/** Resolves labels to the forward offsets BPF jumps take (each at most 255). */
function assemble(p: Ins[]): Uint8Array {
  const at = new Map<string, number>();
  let n = 0;
  for (const ins of p) {
    if ("label" in ins) at.set(ins.label, n);
    else n++;
  }
  const out = new Uint8Array(n * 8);
  const view = new DataView(out.buffer);
  let i = 0;
  for (const ins of p) {
    if ("label" in ins) continue;
    const jump = (label: string | undefined) => {
      if (label === undefined) return 0;
      const off = at.get(label)! - i - 1;
      if (off < 0 || off > 255) throw new Error(`seccomp filter: jump to ${label} out of range`);
      return off;
    };
    view.setUint16(i * 8, ins.code, true);
    view.setUint8(i * 8 + 2, jump(ins.jt));
    view.setUint8(i * 8 + 3, jump(ins.jf));
    view.setUint32(i * 8 + 4, ins.k >>> 0, true);
    i++;
  }
  return out;
}

const PR_SET_NO_NEW_PRIVS = 38;
const PR_SET_SECCOMP = 22;
const SECCOMP_MODE_FILTER = 2;

/**
 * Sets no_new_privs (when asked: without CAP_SYS_ADMIN the kernel requires it), then installs the
 * filter on the calling thread; children it makes afterwards inherit both. Throws on failure.
 */
export function installSocketFilter(allowedFamilies: readonly number[], noNewPrivs: boolean): void {
  const c = libc();
  if (noNewPrivs && c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0) throw new Error(`prctl(PR_SET_NO_NEW_PRIVS) failed: errno ${errno()}`);
  const filter = buildFilter(allowedFamilies);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }: 16 bytes on 64-bit.
  const prog = new BigUint64Array(2);
  new DataView(prog.buffer).setUint16(0, filter.length / 8, true);
  prog[1] = BigInt(ptr(filter));
  if (c.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ptr(prog), 0, 0) !== 0) throw new Error(`installing the seccomp filter failed: errno ${errno()}`);
}

/** --allow-socket-family's value: names (vsock, packet, ...) or numbers, comma-separated; or why not. */
export function parseFamilies(text: string): number[] | string {
  const out: number[] = [];
  for (const item of text.split(",").map((s) => s.trim().toLowerCase())) {
    const name = item.replace(/^af_/, "");
    const n = /^\d+$/.test(item) ? Number(item) : (FAMILY_NUMBERS[name] ?? (AF as Record<string, number>)[name]);
    if (n === undefined || n < 1 || n > 63) return `unknown socket family "${item}" (a name such as ${Object.keys(FAMILY_NUMBERS).slice(0, 6).join(", ")}, or a number 1-63)`;
    if (!ALWAYS_ALLOWED_FAMILIES.includes(n) && !out.includes(n)) out.push(n);
  }
  return out;
}
