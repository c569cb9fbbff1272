// `proxywall doctor`: runs the real command as a subprocess. As root (or in CI, where a namespace
// that cannot be created must fail the run, not skip it) the core checks must pass on this machine
// and nothing may be left behind; as an unprivileged user it must report what is missing and exit 1.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { CHECK_NAMES, DoctorReport, type Check } from "../src/doctor/report.ts";
import { renderHuman } from "../src/cli/doctor.ts";
import { noFenceFix } from "../src/doctor/fence.ts";
import { cgroupV1CpuDir, writable } from "../src/doctor/runtime.ts";
import { featureFix } from "../src/sandbox/fence-step.ts";
import { tempDir } from "./support/temp.ts";

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "src/main.ts");
const isRoot = process.getuid?.() === 0;
const privileged = Boolean(process.env.CI) || isRoot;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string[]): Ran {
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString(), ms: performance.now() - t0 };
}

const doctor = (...args: string[]) => run([process.execPath, MAIN, "doctor", ...args]);

function parseReport(stdout: string): DoctorReport {
  const r = v.safeParse(DoctorReport, JSON.parse(stdout));
  if (!r.success) throw new Error(`doctor --json does not match its schema: ${JSON.stringify(v.flatten(r.issues))}`);
  return r.output;
}

const byName = (report: DoctorReport) => new Map(report.checks.map((c) => [c.name, c] as const));

function ipTool(): string {
  for (const p of ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]) if (existsSync(p)) return p;
  return "ip";
}

/** What doctor could leave behind: named namespaces and links. */
function snapshot(): { netns: string; links: string } {
  const ip = ipTool();
  return { netns: run([ip, "netns", "list"]).stdout, links: run([ip, "-o", "link"]).stdout };
}

/**
 * Runs `fn` between two snapshots and returns both. Other work on this machine may create or remove
 * its own namespaces meanwhile: a difference that involves no doctor scratch name is retried (up to
 * three runs), so that only a quiet machine's identical snapshots, or doctor's own leftovers, decide.
 */
function aroundSnapshots<T>(fn: () => T): { value: T; before: ReturnType<typeof snapshot>; after: ReturnType<typeof snapshot> } {
  for (let attempt = 1; ; attempt++) {
    const before = snapshot();
    const value = fn();
    const after = snapshot();
    const same = before.netns === after.netns && before.links === after.links;
    const ours = /pwdoc-/.test(after.netns + after.links);
    if (same || ours || attempt === 3) return { value, before, after };
  }
}

/** A command prefix that drops to uid/gid 65534 with no groups, or null when none is installed. */
function dropPrivileges(): string[] | null {
  for (const d of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    if (existsSync(`${d}/setpriv`)) return [`${d}/setpriv`, "--reuid=65534", "--regid=65534", "--clear-groups"];
  }
  for (const d of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (existsSync(`${d}/runuser`)) return [`${d}/runuser`, "-u", "nobody", "--"];
  }
  return null;
}

describe("report schema and rendering", () => {
  const check = (name: Check["name"], status: Check["status"], required: boolean): Check => ({
    name,
    status,
    required,
    detail: `${name} detail`,
    fix: status === "ok" ? null : `fix ${name}`,
  });

  test("ok must agree with the required checks", () => {
    const checks = [check("ip", "ok", true), check("netns", "missing", true), check("kmsg", "warn", false)];
    expect(v.safeParse(DoctorReport, { ok: false, checks }).success).toBe(true);
    expect(v.safeParse(DoctorReport, { ok: true, checks }).success).toBe(false);
    expect(v.safeParse(DoctorReport, { ok: true, checks: [check("ip", "ok", true), check("kmsg", "warn", false)] }).success).toBe(true);
  });

  test("unknown statuses, unknown names, extra fields and duplicates are rejected", () => {
    const good = check("ip", "ok", true);
    expect(v.safeParse(DoctorReport, { ok: true, checks: [{ ...good, status: "fine" }] }).success).toBe(false);
    expect(v.safeParse(DoctorReport, { ok: true, checks: [{ ...good, name: "bogus" }] }).success).toBe(false);
    expect(v.safeParse(DoctorReport, { ok: true, checks: [{ ...good, extra: 1 }] }).success).toBe(false);
    expect(v.safeParse(DoctorReport, { ok: true, checks: [good, good] }).success).toBe(false);
  });

  test("human output: one aligned line per check, a fix line under failing ones, a summary", () => {
    const report: DoctorReport = { ok: false, checks: [check("ip", "ok", true), check("netns", "missing", true), check("kmsg", "warn", false)] };
    const lines = renderHuman(report).trimEnd().split("\n");
    expect(lines[0]).toBe("ok       ip     ip detail");
    expect(lines[1]).toBe("MISSING  netns  netns detail");
    expect(lines[2]).toBe("                fix: fix netns");
    expect(lines[3]).toBe("warn     kmsg   optional: kmsg detail");
    expect(lines[4]).toBe("                fix: fix kmsg");
    expect(lines.at(-1)).toBe("no: proxywall run cannot build a fenced sandbox here (failed: netns)");
  });
});

describe.skipIf(!privileged)("doctor with privileges (root, or CI)", () => {
  test("--json: valid report, core checks ok, exit 0, fast, nothing left behind", () => {
    const { value: r, before, after } = aroundSnapshots(() => doctor("--json"));
    expect(r.stderr).toBe("");
    const report = parseReport(r.stdout);
    const checks = byName(report);
    expect([...checks.keys()]).toEqual([...CHECK_NAMES]);
    for (const name of ["cap-net-admin", "cap-sys-admin", "ip", "nft", "netns", "veth", "fence", "conntrack", "nflog", "log", "cleanup"] as const) {
      expect({ name, status: checks.get(name)?.status, detail: checks.get(name)?.detail }).toEqual({ name, status: "ok", detail: expect.any(String) });
    }
    expect(checks.get("iptables")!.detail).toMatch(/nf_tables backend|legacy backend/);
    expect(report.ok).toBe(true);
    expect(r.code).toBe(0);
    // The whole run, Bun start-up included, stays well under two seconds.
    expect(r.ms).toBeLessThan(2000);
    const scratch = /pwdoc-[0-9a-f]{6}/.exec(checks.get("netns")!.detail)![0];
    expect(before.netns).not.toContain(scratch);
    expect(after.netns).not.toContain("pwdoc-");
    expect(after.links).not.toContain("pwdoc-");
    expect(after).toEqual(before);
  });

  test("--backend iptables: the iptables-restore backend loads the fence, conntrack and NFLOG", () => {
    const { value: r, before, after } = aroundSnapshots(() => doctor("--json", "--backend", "iptables"));
    const checks = byName(parseReport(r.stdout));
    for (const name of ["fence", "conntrack", "nflog", "log", "cleanup"] as const) expect(`${name}: ${checks.get(name)?.status}`).toBe(`${name}: ok`);
    expect(checks.get("fence")!.detail).toContain("iptables-restore");
    expect(r.code).toBe(0);
    expect(after).toEqual(before);
  });

  test("a signal while the scratch namespace exists still removes it", async () => {
    const scratchNow = () => (existsSync("/run/netns") ? readdirSync("/run/netns").filter((n) => n.startsWith("pwdoc-")) : []);
    const links = () => run([ipTool(), "-o", "link"]).stdout.split("\n").filter((l) => l.includes("pwdoc-"));
    let caught: string | null = null;
    for (let attempt = 0; attempt < 10 && caught === null; attempt++) {
      const p = Bun.spawn([process.execPath, MAIN, "doctor", "--json"], { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
      const t0 = performance.now();
      while (p.exitCode === null && performance.now() - t0 < 2000) {
        const seen = scratchNow();
        if (seen.length > 0) {
          p.kill("SIGTERM");
          caught = seen[0]!;
          break;
        }
        await Bun.sleep(1);
      }
      const code = await p.exited;
      if (caught !== null) {
        expect(code).toBe(128 + 15);
        expect(await new Response(p.stderr).text()).toBe("");
      }
    }
    expect(caught).not.toBeNull();
    expect(scratchNow()).toEqual([]);
    expect(links()).toEqual([]);
  });

  test("human output names every check and ends with a yes", () => {
    const { value: r, before, after } = aroundSnapshots(() => doctor());
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    for (const name of CHECK_NAMES) expect(lines.some((l) => new RegExp(`^(ok|MISSING|warn) +${name} `).test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/^yes: proxywall run can build a fenced sandbox here/);
    expect(after).toEqual(before);
  });
});

describe("doctor without privileges", () => {
  const drop = isRoot ? dropPrivileges() : [];

  test.if(drop !== null)("reports the missing privileges, exits 1, does not crash", () => {
    const { value: r, before, after } = aroundSnapshots(() => run([...drop!, process.execPath, MAIN, "doctor", "--json"]));
    expect(r.stderr).toBe("");
    const report = parseReport(r.stdout);
    const checks = byName(report);
    expect(report.ok).toBe(false);
    expect(r.code).toBe(1);
    expect(checks.get("cap-net-admin")!.status).toBe("missing");
    expect(checks.get("cap-net-admin")!.fix).toContain("run as root");
    expect(checks.get("netns")!.status).toBe("missing");
    expect(checks.get("fence")!.status).toBe("missing");
    expect(checks.get("cleanup")!.status).toBe("ok");
    expect(after).toEqual(before);

    const human = run([...drop!, process.execPath, MAIN, "doctor"]);
    expect(human.code).toBe(1);
    expect(human.stderr).toBe("");
    expect(human.stdout).toContain("fix: run as root");
    expect(human.stdout.trimEnd().split("\n").at(-1)).toMatch(/^no: proxywall run cannot build a fenced sandbox here \(failed: .*cap-net-admin/);
  });
});

test("unknown flags are usage errors (exit 2), not findings", () => {
  const r = doctor("--bogus");
  expect(r.code).toBe(2);
  expect(r.stdout).toBe("");
  expect(r.stderr).toContain("unknown option --bogus");
});

describe("fixes name the real missing piece", () => {
  const probe = (backend: "nft" | "iptables", tools: boolean, unusable: string | null = null) => ({ backend, tools: tools ? { nft: "/usr/sbin/nft" } : null, unusable, unsupported: new Map() });

  test("no NFQUEUE in an nft-only image on a kernel with the xt target: add iptables to the image, not a host module", () => {
    const nftOnly = [probe("nft", true), probe("iptables", false), probe("iptables", false)];
    expect(featureFix("queue", nftOnly, true)).toMatch(/^add the iptables package to the image .*xt NFQUEUE target/);
    expect(featureFix("queue", nftOnly, false)).toMatch(/^add the iptables package to the image.*; or load nfnetlink_queue/);
    // iptables was there and lacks it too, or --backend nft left it out: the host's modules.
    expect(featureFix("queue", [probe("nft", true), probe("iptables", true)], true)).toMatch(/on the host$/);
    expect(featureFix("queue", [probe("nft", true)], true)).toMatch(/on the host$/);
  });

  test("no fence: the packages when no tool is installed, the kernel when it refused the rejects, none for a tool's own failure", () => {
    expect(noFenceFix([probe("nft", false, "nft not found"), probe("iptables", false, "not found")])).toMatch(/^install the nftables package in the image/);
    expect(noFenceFix([probe("nft", true, "nft cannot install the rejects here: Error: Could not process rule")])).toMatch(/^the kernel refuses even the rejects/);
    expect(noFenceFix([probe("nft", true, "a check-only run failed (exit 1): Error: Could not resolve protocol name"), probe("iptables", false, "not found")])).toBeNull();
  });

  test("the cgroup v1 cpu directory of this process, from mountinfo and /proc/self/cgroup", () => {
    using dir = tempDir("pw-doctor-cg-");
    const mounts = dir.path("mountinfo");
    const groups = dir.path("cgroup");
    writeFileSync(mounts, "30 25 0:26 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
    writeFileSync(groups, "2:cpuacct:/\n1:cpu:/docker/abc\n0::/\n");
    expect(cgroupV1CpuDir(mounts, groups)).toBe("/sys/fs/cgroup/cpu/docker/abc");
    // Inside a container the mount's root is the container's own group.
    writeFileSync(mounts, "31 25 0:27 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n");
    writeFileSync(groups, "1:cpu,cpuacct:/docker/abc\n");
    expect(cgroupV1CpuDir(mounts, groups)).toBe("/sys/fs/cgroup/cpu,cpuacct");
    // cgroup v2 names no controller: nothing to read.
    writeFileSync(mounts, "31 25 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    writeFileSync(groups, "0::/user.slice\n");
    expect(cgroupV1CpuDir(mounts, groups)).toBeNull();
  });

  test("a state dir: writable, makeable under a writable parent, or why not", () => {
    using dir = tempDir("pw-doctor-sd-");
    expect(writable(dir.root)).toMatchObject({ ok: true });
    expect(writable(dir.path("a/b"))).toMatchObject({ ok: true, how: expect.stringContaining("can be made") });
    writeFileSync(dir.path("file"), "");
    expect(writable(dir.path("file/x"))).toMatchObject({ ok: false, why: expect.stringContaining("is not a directory") });
  });
});

/** The cgroup v1 cpu controller's mount, when this host has one with real-time budgets. */
const CPU_V1 = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"].find((d) => existsSync(`${d}/cpu.rt_runtime_us`)) ?? null;

describe.skipIf(!isRoot || CPU_V1 === null)("doctor in a cgroup v1 group without a real-time budget", () => {
  test("realtime says CAP_SYS_NICE cannot help there, and names cpu.rt_runtime_us", () => {
    // A group of the test's own: a new v1 cpu group starts with cpu.rt_runtime_us 0.
    const group = `${CPU_V1}/pwtest-rt-${process.pid}`;
    mkdirSync(group);
    try {
      expect(readFileSync(`${group}/cpu.rt_runtime_us`, "utf8").trim()).toBe("0");
      const r = run(["sh", "-c", `echo $$ > ${group}/cgroup.procs && exec "$0" "$1" doctor --json`, process.execPath, MAIN]);
      const realtime = byName(parseReport(r.stdout)).get("realtime")!;
      expect(realtime.status).toBe("warn");
      expect(realtime.detail).toContain(`${group}/cpu.rt_runtime_us is 0`);
      expect(realtime.detail).toContain("even with CAP_SYS_NICE");
      expect(realtime.fix).toContain("real-time budget");
      expect(realtime.fix).not.toMatch(/^grant CAP_SYS_NICE/);
    } finally {
      rmdirSync(group);
    }
  });
});
