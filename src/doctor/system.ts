// The checks that need no scratch namespace: tools, the kernel log, user namespaces (what the
// runtime gives, a state dir and a real-time budget, is in runtime.ts). Each names the real
// missing piece: a package in the image, a capability, a setting on the host.
import { closeSync, constants as fsc, existsSync, openSync, readlinkSync } from "node:fs";
import { openNflog } from "../monitor/nflog-socket.ts";
import { findTool } from "../sys/tools.ts";
import { bad, errnoText, firstLine, ok, readText, run, said, type Check } from "./report.ts";

// NFLOG netlink socket: bind a group with the monitor's own code, inside the scratch namespace.

/** Binds NFLOG `group` in the namespace and lets it go again; null on success, else why not. */
export async function probeNflogBind(nsPath: string, group: number): Promise<string | null> {
  try {
    await openNflog({ netns: nsPath, group, onPacket: () => {} }).close();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// ---------------------------------------------------------------------------------------------
// Tools

async function toolVersion(path: string, args: string[]): Promise<string> {
  const r = await run(path, args);
  return firstLine(r.stdout) || firstLine(r.stderr) || `exit ${r.code}`;
}

export async function checkIp(): Promise<Check> {
  const ip = findTool("ip");
  if (!ip) return bad("ip", "missing", true, "ip (iproute2) not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin", "install the iproute2 package in the image (apt-get install iproute2; apk add iproute2)");
  const version = await toolVersion(ip, ["-V"]);
  if (/busybox/i.test(version)) return bad("ip", "missing", true, `${ip} is BusyBox ip (${version}): it has no netns or -batch`, "install the iproute2 package in the image (apt-get install iproute2; apk add iproute2)");
  return ok("ip", true, `${ip}: ${version}`);
}

export async function checkNft(): Promise<Check> {
  const nft = findTool("nft");
  if (!nft) {
    const alt = (findTool("iptables-restore") && findTool("ip6tables-restore")) || (findTool("iptables-legacy-restore") && findTool("ip6tables-legacy-restore")) ? " (the iptables backend is used instead)" : "";
    return bad("nft", "missing", false, `nft not found${alt}`, "install the nftables package in the image (apt-get install nftables; apk add nftables)");
  }
  return ok("nft", false, `${nft}: ${await toolVersion(nft, ["--version"])}`);
}

/** iptables or ip6tables: the -restore tools the iptables backend feeds, legacy and the system's. */
export async function checkXtables(name: "iptables" | "ip6tables"): Promise<Check> {
  const tool = findTool(name);
  const restore = findTool(`${name}-restore`);
  const legacy = findTool(`${name}-legacy-restore`);
  const kernel = existsSync(`/proc/net/${name === "iptables" ? "ip" : "ip6"}_tables_names`);
  const fix = "install the iptables package in the image (apt-get install iptables; apk add iptables): only needed where nft lacks a feature";
  if (!tool && !restore && !legacy) return bad(name, "missing", false, `${name}, ${name}-restore and ${name}-legacy-restore not found (only needed where nft is absent or lacks a feature)`, fix);
  const version = tool ? await toolVersion(tool, ["--version"]) : "";
  const m = /\((nf_tables|legacy)\)/.exec(version);
  const backend = m ? (m[1] === "nf_tables" ? "nf_tables backend" : "legacy backend (x_tables)") : "backend unknown";
  const parts = [tool ? `${tool}: ${version || "no version"}, ${backend}` : `${name} not found`];
  parts.push(restore ? `${name}-restore: ${restore}` : `${name}-restore not found`);
  parts.push(legacy ? `${name}-legacy-restore: ${legacy}` : `${name}-legacy-restore not found`);
  parts.push(kernel ? "the kernel has legacy x_tables" : "the kernel has no legacy x_tables loaded");
  return restore || (legacy && kernel) ? ok(name, false, parts.join("; ")) : bad(name, "missing", false, parts.join("; "), fix);
}

// ---------------------------------------------------------------------------------------------
// Logging and the kernel log

/** net.netfilter.nf_log_all_netns exists only in the initial network namespace. */
function readLogAllNetns(): { present: boolean; value: string | null; netfilterDir: boolean } {
  const value = readText("/proc/sys/net/netfilter/nf_log_all_netns");
  return { present: value !== null, value, netfilterDir: existsSync("/proc/sys/net/netfilter") };
}

export function checkKmsg(): Check {
  try {
    const fd = openSync("/dev/kmsg", fsc.O_RDONLY | fsc.O_NONBLOCK);
    closeSync(fd);
    return ok("kmsg", false, "/dev/kmsg opens for reading");
  } catch (e) {
    const code = errnoText(e);
    const why =
      code === "ENOENT"
        ? "/dev/kmsg does not exist (container runtimes usually leave it out)"
        : code === "EPERM" || code === "EACCES"
          ? `/dev/kmsg cannot be opened: ${code} (needs CAP_SYSLOG when kernel.dmesg_restrict=1; container runtimes block it)`
          : `/dev/kmsg cannot be opened: ${code}`;
    return bad("kmsg", "warn", false, why, "only --monitor kmsg needs it: run as root on the host; --monitor nflog (the default, auto) does not");
  }
}

export function checkLogAllNetns(): Check {
  const s = readLogAllNetns();
  const FIX = "sysctl -w net.netfilter.nf_log_all_netns=1 (host-wide: leaks every namespace's packet logs into the host kernel log); only --monitor kmsg needs it";
  if (!s.present) {
    return bad(
      "nf-log-all-netns",
      "warn",
      false,
      s.netfilterDir
        ? "absent: proxywall is not in the initial network namespace (the sysctl exists only there), so it cannot be read or set from here"
        : "absent: /proc/sys/net/netfilter does not exist (netfilter not loaded, or /proc/sys not mounted)",
      "nothing, with --monitor nflog (the default, auto); for --monitor kmsg the host would have to set it",
    );
  }
  if (s.value === "1") return ok("nf-log-all-netns", false, "1: LOG lines from sandbox namespaces reach the kernel log");
  return bad("nf-log-all-netns", "warn", false, `${s.value}: LOG lines from sandbox namespaces never reach the kernel log (--monitor kmsg would see nothing)`, FIX);
}

export function checkInitialNetns(): { check: Check; initial: boolean | null } {
  const s = readLogAllNetns();
  let self = "";
  let init = "";
  try {
    self = readlinkSync("/proc/self/ns/net");
    init = readlinkSync("/proc/1/ns/net");
  } catch {}
  const compare = self && init ? `; /proc/self/ns/net ${self === init ? "=" : "!="} /proc/1/ns/net (${self})` : self ? `; own namespace ${self}, /proc/1/ns/net unreadable` : "";
  if (s.present) return { check: ok("initial-netns", false, `yes: net.netfilter.nf_log_all_netns exists, which it does only in the initial network namespace${compare}`), initial: true };
  if (s.netfilterDir) {
    return {
      check: bad("initial-netns", "warn", false, `no: /proc/sys/net/netfilter has no nf_log_all_netns, so this is a container's or other non-initial network namespace${compare}`, "nothing for --monitor nflog (the default, auto); --monitor kmsg cannot work here"),
      initial: false,
    };
  }
  return { check: bad("initial-netns", "warn", false, `cannot tell: /proc/sys/net/netfilter is absent${compare}`, null), initial: null };
}

export async function checkUserns(): Promise<Check> {
  const max = readText("/proc/sys/user/max_user_namespaces");
  if (max !== null && Number(max) <= 0) {
    return bad("userns", "warn", false, `user.max_user_namespaces = ${max}: user namespaces are disabled`, "sysctl -w user.max_user_namespaces=15000 (only needed for unprivileged use)");
  }
  const base = max === null ? "/proc/sys/user/max_user_namespaces not readable" : `user.max_user_namespaces = ${max}`;
  const unshare = findTool("unshare");
  if (!unshare) return bad("userns", "warn", false, `${base}; not checked: needs unshare (the util-linux package)`, null);
  const r = await run(unshare, ["-U", "true"]);
  if (r.code === 0) return ok("userns", false, `${base}; unshare -U true works`);
  const apparmor = readText("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  const hint = apparmor === "1" ? "kernel.apparmor_restrict_unprivileged_userns = 1 blocks them" : "a seccomp profile or sysctl blocks them";
  return bad("userns", "warn", false, `${base}; unshare -U true failed: ${said(r)}`, `${hint} (only needed for unprivileged use)`);
}

