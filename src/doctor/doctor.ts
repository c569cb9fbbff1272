// `proxywall doctor`: can this machine build a fenced sandbox, and which monitor would report the
// bypass attempts? Every check looks at the real thing: tools are run, a scratch namespace with a
// veth pair is made (and always removed), and the fence run would choose (fence.ts, through run's
// own selection code) is installed in it, so the kernel itself says what it supports. Without
// privileges the checks that need them say "not checked: needs ..." instead of trying.
import { CAP_NET_ADMIN, CAP_SYS_ADMIN, effectiveCaps, hasCap } from "../sys/capabilities.ts";
import { findTool, toolError } from "../sys/tools.ts";
import type { Backend } from "../plan/sandbox-plan.ts";
import { fenceChecks, fenceNotChecked } from "./fence.ts";
import { bad, CHECK_NAMES, notChecked, ok, RUN_AS_ROOT, type Check, type DoctorReport } from "./report.ts";
import { withScratch, type Scratch, type ScratchSteps } from "./scratch.ts";
import { checkRealtime, checkStateDir } from "./runtime.ts";
import { checkInitialNetns, checkIp, checkKmsg, checkLogAllNetns, checkNft, checkUserns, checkXtables } from "./system.ts";
import { DEFAULT_STATE_DIR } from "../sandbox/state.ts";

export interface DoctorOptions {
  /** The firewall backend to check; by default the one `run` would pick. */
  backend?: Backend;
  /** The state directory run would use (--state-dir). */
  stateDir?: string;
}

/** The real missing piece when `ip netns add` failed, from what ip said. */
function netnsFix(said: string): string {
  if (/\/run\/netns|read-only|Permission denied|EACCES|EROFS/i.test(said)) {
    return "a writable /run/netns: a writable /run (docker run --tmpfs /run, or a tmpfs owned by a non-root image user; Kubernetes: an emptyDir at /run)";
  }
  if (/Operation not permitted/i.test(said)) return `CAP_SYS_ADMIN where the namespace is mounted (${RUN_AS_ROOT}), and no seccomp profile that refuses unshare/mount`;
  return "a kernel with network namespaces (CONFIG_NET_NS); see ip's message";
}

function capChecks(netAdmin: boolean, sysAdmin: boolean): Check[] {
  const uid = process.getuid?.() ?? -1;
  const who = uid === 0 ? "uid 0" : `uid ${uid} (not root)`;
  return [
    netAdmin
      ? ok("cap-net-admin", true, `${who}, CAP_NET_ADMIN is effective (links, routes, firewall rules)`)
      : bad("cap-net-admin", "missing", true, `${who}, CAP_NET_ADMIN is not effective: links and firewall rules cannot be made`, RUN_AS_ROOT),
    sysAdmin
      ? ok("cap-sys-admin", true, `${who}, CAP_SYS_ADMIN is effective (ip netns add mounts the namespace)`)
      : bad("cap-sys-admin", "missing", true, `${who}, CAP_SYS_ADMIN is not effective: named network namespaces cannot be created`, RUN_AS_ROOT),
  ];
}

/** The namespace, the veth pair and the fence, in the scratch namespace. */
async function scratchChecks(s: Scratch, steps: ScratchSteps, backend: Backend | undefined): Promise<{ checks: Check[]; nflogWorks: boolean }> {
  if (steps.netns?.code !== 0) {
    const said = steps.netns ? toolError(`ip netns add ${s.netns}`, steps.netns) : "ip netns add did not run";
    const netns = bad("netns", "missing", true, said, netnsFix(said));
    return { checks: [netns, notChecked("veth", true, "a scratch namespace"), ...fenceNotChecked("a scratch namespace")], nflogWorks: false };
  }
  const checks = [ok("netns", true, `ip netns add ${s.netns} worked`)];
  checks.push(
    steps.veth === null
      ? notChecked("veth", true, "a scratch namespace")
      : steps.veth.code === 0
        ? ok("veth", true, `ip -n ${s.netns} link add pw0 type veth peer name pw1 worked`)
        : bad("veth", "missing", true, toolError("ip link add ... type veth", steps.veth), "a kernel with veth (CONFIG_VETH; on the host: modprobe veth)"),
  );
  const fence = await fenceChecks(backend, s.netns);
  return { checks: [...checks, ...fence.checks], nflogWorks: fence.nflogWorks };
}

function monitorCheck(checks: readonly Check[], nflogWorks: boolean, initial: boolean | null): Check {
  const status = (n: Check["name"]) => checks.find((c) => c.name === n)?.status;
  const kmsgWorks = status("kmsg") === "ok" && initial === true && status("nf-log-all-netns") === "ok";
  const kmsgWhyNot = [status("kmsg") !== "ok" ? "/dev/kmsg unreadable" : "", initial !== true ? "not in the initial network namespace" : "", status("nf-log-all-netns") !== "ok" ? "nf_log_all_netns is not 1" : ""].filter(Boolean).join(", ");
  // A fix only for a finding: an NFLOG check that never ran gets none.
  const nflog = checks.find((c) => c.name === "nflog");
  const nflogChecked = nflog !== undefined && !nflog.detail.startsWith("not checked");
  const nflogWhyNot = nflog && nflogChecked ? "NFLOG does not work here (see nflog)" : (nflog?.detail ?? "not checked");
  const nflogFix = nflogChecked ? nflog?.fix ?? null : null;
  if (nflogWorks) return ok("monitor", false, `nflog (the default, --monitor auto) works${kmsgWorks ? "; kmsg works too" : `; kmsg would not (${kmsgWhyNot})`}`);
  if (kmsgWorks) return bad("monitor", "warn", false, `only kmsg works (nflog: ${nflogWhyNot})`, `run picks kmsg by itself (--monitor auto)${nflogFix ? `; for nflog: ${nflogFix}` : ""}`);
  return bad("monitor", "warn", false, `none would report bypass attempts (nflog: ${nflogWhyNot}; kmsg: ${kmsgWhyNot})`, nflogFix);
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const caps = effectiveCaps();
  const netAdmin = hasCap(CAP_NET_ADMIN, caps);
  const sysAdmin = hasCap(CAP_SYS_ADMIN, caps);
  const checks = capChecks(netAdmin, sysAdmin);
  const [ipCheck, nftCheck, v4Check, v6Check, usernsCheck] = await Promise.all([checkIp(), checkNft(), checkXtables("iptables"), checkXtables("ip6tables"), checkUserns()]);
  checks.push(ipCheck, nftCheck, v4Check, v6Check, checkStateDir(opts.stateDir ?? DEFAULT_STATE_DIR));

  const ip = findTool("ip");
  const needs = !netAdmin || !sysAdmin ? "CAP_NET_ADMIN and CAP_SYS_ADMIN" : ipCheck.status !== "ok" ? "iproute2's ip" : null;
  const cleanup: { scratch: Scratch | null; left: string[] } = { scratch: null, left: [] };
  let nflogWorks = false;
  if (needs === null && ip) {
    const r = await withScratch(ip, cleanup, (s, steps) => scratchChecks(s, steps, opts.backend));
    checks.push(...r.checks);
    nflogWorks = r.nflogWorks;
  } else {
    checks.push(notChecked("netns", true, needs ?? "ip"), notChecked("veth", true, needs ?? "ip"), ...fenceNotChecked(`${needs} (rules are loaded into a scratch namespace)`));
  }

  const initial = checkInitialNetns();
  checks.push(checkKmsg(), checkLogAllNetns(), initial.check, usernsCheck);
  checks.push(monitorCheck(checks, nflogWorks, initial.initial), checkRealtime());

  const sc = cleanup.scratch;
  if (!sc) checks.push(ok("cleanup", true, "nothing was created"));
  else if (cleanup.left.length > 0) checks.push(bad("cleanup", "missing", true, `left behind: ${cleanup.left.join(", ")}`, `ip netns del ${sc.netns}`));
  else checks.push(ok("cleanup", true, `scratch namespace ${sc.netns} and its veth pair removed`));

  const order = new Map(CHECK_NAMES.map((n, i) => [n, i]));
  checks.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return { ok: checks.every((c) => !c.required || c.status === "ok"), checks };
}
