// The checks about what the container runtime gave proxywall, besides capabilities: writable
// directories for its state and for named network namespaces, and a real-time budget. Nothing is
// created: access(2) answers for the calling process (its uid, capabilities and read-only mounts).
import { accessSync, constants as fsc, existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { hasCap } from "../sys/capabilities.ts";
import { setRealtime } from "../sys/sched.ts";
import { bad, errnoText, ok, readText, type Check } from "./report.ts";

const CAP_SYS_NICE = 23;

/** Where `ip netns add` puts the namespace's name (it makes the directory, then a file in it). */
const NETNS_DIR = "/run/netns";

/** Whether `dir` could be made (if missing) and written: the nearest existing ancestor decides. */
export function writable(dir: string): { ok: true; how: string } | { ok: false; why: string } {
  let at = dir;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    if (!statSync(at).isDirectory()) return { ok: false, why: `${at} is not a directory` };
    accessSync(at, fsc.W_OK | fsc.X_OK);
    return { ok: true, how: at === dir ? `${dir} is writable` : `${dir} does not exist yet; ${at} is writable, so it can be made` };
  } catch (e) {
    const code = errnoText(e);
    const what = code === "EROFS" ? "is on a read-only file system" : code === "EACCES" ? "is not writable by this user" : `cannot be written (${code})`;
    return { ok: false, why: at === dir ? `${dir} ${what}` : `${dir} does not exist and ${at} ${what}` };
  }
}

/** The state dir (--state-dir) and /run/netns: run needs both before anything else. */
export function checkStateDir(stateDir: string): Check {
  const uid = process.getuid?.() ?? -1;
  const places = [writable(stateDir), writable(NETNS_DIR)];
  const failed = places.filter((p): p is { ok: false; why: string } => !p.ok);
  if (failed.length === 0) return ok("state-dir", true, places.map((p) => (p as { how: string }).how).join("; "));
  const user = uid === 0 ? "" : ` for uid ${uid}, or a tmpfs owned by it (docker run --tmpfs /run:uid=${uid},mode=755)`;
  return bad(
    "state-dir",
    "missing",
    true,
    `${failed.map((f) => f.why).join("; ")}: run keeps its state files there and ip netns add names the namespace in ${NETNS_DIR}`,
    `a writable /run${user} (docker run --tmpfs /run; Kubernetes: an emptyDir volume at /run); --state-dir DIR moves proxywall's own files, not ${NETNS_DIR}`,
  );
}

/** The cgroup v1 `cpu` controller's directory for this process, when the host uses cgroup v1. */
export function cgroupV1CpuDir(mountinfo = "/proc/self/mountinfo", cgroup = "/proc/self/cgroup"): string | null {
  let mounts: string;
  let groups: string;
  try {
    mounts = readFileSync(mountinfo, "utf8");
    groups = readFileSync(cgroup, "utf8");
  } catch {
    return null;
  }
  // "ID:cpu,cpuacct:/path" (v1) or "0::/path" (v2, no controllers named)
  const path = /^\d+:([^:]*):(.*)$/gm;
  let own: string | null = null;
  for (const m of groups.matchAll(path)) if (m[1]!.split(",").includes("cpu")) own = m[2]!;
  if (own === null) return null;
  for (const line of mounts.split("\n")) {
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS
    const [left, right] = line.split(" - ");
    const f = left?.split(" ") ?? [];
    const r = right?.split(" ") ?? [];
    if (r[0] !== "cgroup" || !r[2]?.split(",").includes("cpu")) continue;
    const root = f[3]!;
    const rel = root === "/" ? own : own.startsWith(root) ? own.slice(root.length) : null;
    if (rel !== null) return `${f[4]}${rel === "/" ? "" : rel}`;
  }
  return null;
}

/** Whether the watch thread can run at real-time priority: tried on this thread, then undone. */
export function checkRealtime(): Check {
  if (setRealtime(true)) {
    setRealtime(false);
    return ok("realtime", false, "the watch thread can run at real-time priority (SCHED_FIFO 1) while it is not flooded");
  }
  const nice = hasCap(CAP_SYS_NICE);
  const dir = cgroupV1CpuDir();
  const budget = dir ? readText(`${dir}/cpu.rt_runtime_us`) : null;
  const without = "the watch thread can wait for a CPU, and a UDP client that exits within a few milliseconds of its attempt may then be reported without its process";
  if (budget === "0") {
    return bad(
      "realtime",
      "warn",
      false,
      `no real-time priority: this is cgroup v1 and ${dir}/cpu.rt_runtime_us is 0 (no real-time budget), so SCHED_FIFO is refused${nice ? " even with CAP_SYS_NICE" : ", and CAP_SYS_NICE alone would not change that"}; ${without}`,
      "give the container a real-time budget on the host (docker run --cpu-rt-runtime=10000 --cap-add SYS_NICE, with dockerd --cpu-rt-runtime set), or accept it: everything else works",
    );
  }
  return bad(
    "realtime",
    "warn",
    false,
    `no real-time priority (${nice ? "CAP_SYS_NICE is effective, yet SCHED_FIFO was refused" : "no CAP_SYS_NICE and no RLIMIT_RTPRIO"}): ${without}`,
    nice ? null : "grant CAP_SYS_NICE (docker run --cap-add SYS_NICE)",
  );
}
