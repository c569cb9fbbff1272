// build.ts: the compiled binary embeds the version, ignores bunfig.toml and .env in the directory it
// runs in, keeps its name when it restarts itself, and SHA256SUMS verifies the binaries and their
// .xz. The last test is the release build of all four targets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, linkSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { BuildError, checkResult, compile, smoke, TARGETS } from "../build.ts";
import { PRIVILEGED, proxywall, TEST_ARGS } from "./support/privileged.ts";
import { splitStderr } from "./support/events.ts";

const ROOT = join(import.meta.dir, "..");
const canRunX64 = process.platform === "linux" && process.arch === "x64";

function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `proxywall-build-test-${tag}-`));
}

function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}) {
  const p = Bun.spawnSync(cmd, { cwd: opts.cwd ?? ROOT, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function head(path: string, bytes: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/** An environment without CI/TEST/NO_COLOR, so a .env that sets NO_COLOR=0 would show as colour. */
function cleanEnv(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8" };
}

/** A working directory an attacker prepared: a preload that leaves a marker, and a .env. */
function hostileDir(): { dir: string; marker: string } {
  const dir = tempDir("hostile");
  const marker = join(dir, "PRELOAD-RAN");
  writeFileSync(join(dir, "bunfig.toml"), `preload = ["./evil.ts"]\n[run]\npreload = ["./evil.ts"]\n`);
  writeFileSync(join(dir, "evil.ts"), `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(marker)}, "ran");\n`);
  writeFileSync(join(dir, ".env"), "PROXYWALL_PROBE=from-dotenv\nPROXYWALL_DEBUG=1\nNO_COLOR=0\nFORCE_COLOR=1\n");
  return { dir, marker };
}

describe.skipIf(!canRunX64)("native linux-x64 build", () => {
  let out = "";
  let bin = "";
  let build: ReturnType<typeof run>;
  const dirs: string[] = [];

  beforeAll(() => {
    out = tempDir("out");
    dirs.push(out);
    bin = join(out, "proxywall-linux-x64");
    build = run([process.execPath, "build.ts", "--target", "linux-x64", "--outdir", out]);
    // xz -6 of 113 MB takes 40-90 s on a busy 2-CPU machine.
  }, 600_000);

  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("build.ts builds only the asked target and its .xz, smoke-tests it, and writes SHA256SUMS", () => {
    expect(build.stderr).toContain("smoke-tested proxywall-linux-x64");
    expect(build.stderr).toMatch(/packed proxywall-linux-x64\.xz: [\d.]+ MB, \d+ %/);
    expect(build.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["SHA256SUMS", "proxywall-linux-x64", "proxywall-linux-x64.xz"]);
    expect(readFileSync(join(out, "SHA256SUMS"), "utf8")).toMatch(/^[0-9a-f]{64} {2}proxywall-linux-x64\n[0-9a-f]{64} {2}proxywall-linux-x64\.xz\n$/);
    const sizes = { plain: Bun.file(bin).size, xz: Bun.file(`${bin}.xz`).size };
    console.error(`linux-x64: ${(sizes.plain / 1e6).toFixed(1)} MB, .xz ${(sizes.xz / 1e6).toFixed(1)} MB`);
    expect(sizes.xz).toBeLessThan(sizes.plain / 2);
  });

  test("the .xz unpacks (xz, and busybox's unxz where there is one) to the very binary", () => {
    const want = run(["sha256sum", bin]).stdout.split(" ")[0];
    for (const unpack of [["xz", "-dc"], ...(Bun.which("busybox") ? [["busybox", "unxz", "-c"]] : [])]) {
      const p = Bun.spawnSync(["sh", "-c", `"$@" | sha256sum`, "unpack", ...unpack, `${bin}.xz`], { stdout: "pipe", stderr: "pipe" });
      expect({ unpack, sum: p.stdout.toString().split(" ")[0] }).toEqual({ unpack, sum: want });
    }
  }, 120_000);

  test("--version prints the package version", () => {
    const r = run([bin, "--version"], { cwd: out, env: cleanEnv(out) });
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  test("SHA256SUMS verifies with sha256sum -c", () => {
    const r = run(["sha256sum", "-c", "SHA256SUMS"], { cwd: out });
    expect(r.stdout).toBe("proxywall-linux-x64: OK\nproxywall-linux-x64.xz: OK\n");
    expect(r.code).toBe(0);
  });

  test("a bunfig.toml preload and a .env in the working directory do nothing", () => {
    const hostile = hostileDir();
    const clean = tempDir("clean");
    dirs.push(hostile.dir, clean);
    for (const args of [["--version"], ["--help"], ["schema"], ["rules", "--help"], ["no-such-command"]]) {
      const inHostile = run([bin, ...args], { cwd: hostile.dir, env: cleanEnv(hostile.dir) });
      const inClean = run([bin, ...args], { cwd: clean, env: cleanEnv(clean) });
      expect({ args, ...inHostile }).toEqual({ args, ...inClean });
    }
    expect(existsSync(hostile.marker)).toBe(false);
  });

  // The NFLOG reader is a Worker: in the binary it runs only if build.ts made it an entrypoint and
  // the code finds it in the bundle. A fresh clone in CI runs as root, so this runs there.
  test.skipIf(!PRIVILEGED && !process.env.CI)("the binary's NFLOG thread reports and names a UDP client, after restarting itself without the optimizing JIT (root)", async () => {
    const py = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.sendto(b'x', ('198.51.100.9', 123))\nexcept OSError:\n    pass";
    const r = await proxywall(["run", ...TEST_ARGS, "--", "python3", "-c", py], { bin, timeoutMs: 20_000, env: { PROXYWALL_DEBUG: "1" } });
    // CMD runs without the capabilities that reach the fence: nothing is degraded.
    expect(r.events.filter((e) => e.event === "degraded").map((e) => e.missing)).toEqual([]);
    // The binary restarted itself with its JIT options (jit-tiers.ts) and kept CMD's argv intact.
    expect(r.text).toContainEqual(expect.stringContaining("JIT: interpreter and baseline JIT (re-executed without DFG and FTL)"));
    const udp = r.events.filter((e) => e.event === "bypass_detect");
    // Not port 53: DNS goes to proxywall's own responder, not through NFLOG.
    expect(udp).toEqual([expect.objectContaining({ proto: "udp", dst_addr: "198.51.100.9", dst_port: 123, source: "nflog" })]);
    expect(udp[0]!.process).toMatchObject({ resolved: true, ancestors: [] });
    expect(udp[0]!.process.cmdline.slice(1)).toEqual(["-c", py]);
    expect(r.events.find((e) => e.event === "sandbox_ready")?.detection).toBe("verified");
  }, 30_000);

  // `ps -C proxywall` and `pgrep -x proxywall` look for the name the kernel gave the process at its
  // last execve: re-executing through /proc/self/exe made it "exe".
  test.skipIf(!PRIVILEGED && !process.env.CI)("after restarting itself the binary is still named proxywall: ps -C and pgrep -x find it (root)", async () => {
    const dir = tempDir("named");
    dirs.push(dir);
    const named = join(dir, "proxywall");
    linkSync(bin, named);
    const p = Bun.spawn([named, "run", ...TEST_ARGS, "--", "sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, PROXYWALL_DEBUG: "1" } });
    const timer = setTimeout(() => p.kill("SIGKILL"), 40_000);
    let stderr = "";
    const reader = p.stderr.getReader();
    const decoder = new TextDecoder();
    /** Reads stderr until `until` holds or it ends. */
    const readUntil = async (until: () => boolean) => {
      while (!until()) {
        const { value, done } = await reader.read();
        if (done) return;
        stderr += decoder.decode(value, { stream: true });
      }
    };
    try {
      await readUntil(() => stderr.includes('"event":"sandbox_ready"'));
      expect(readFileSync(`/proc/${p.pid}/comm`, "utf8")).toBe("proxywall\n");
      expect(readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0")[0]).toBe(named);
      expect(run(["ps", "-C", "proxywall", "-o", "pid="]).stdout.split("\n").map((l) => l.trim())).toContain(String(p.pid));
      expect(run(["pgrep", "-x", "proxywall"]).stdout.split("\n")).toContain(String(p.pid));
    } finally {
      p.kill("SIGTERM");
      await readUntil(() => false);
      await p.exited;
      clearTimeout(timer);
    }
    expect(splitStderr(stderr).events.find((e) => e.event === "sandbox_closed")).toBeDefined();
    // It did restart itself (the line comes with the summary at the end).
    expect(stderr).toContain("JIT: interpreter and baseline JIT (re-executed without DFG and FTL)");
  }, 60_000);

  test("compile() gives any entry point the same protection (a probe that prints its env)", async () => {
    const hostile = hostileDir();
    const work = tempDir("probe");
    dirs.push(hostile.dir, work);
    const entry = join(work, "probe.ts");
    writeFileSync(entry, `console.log(JSON.stringify({ probe: process.env.PROXYWALL_PROBE ?? null, v: BUILD_VERSION }));\n`);
    await compile("linux-x64", join(work, "probe"), "9.9.9-probe", entry);
    const r = run([join(work, "probe")], { cwd: hostile.dir, env: cleanEnv(hostile.dir) });
    expect(r).toMatchObject({ code: 0, stdout: `{"probe":null,"v":"9.9.9-probe"}\n` });
    expect(existsSync(hostile.marker)).toBe(false);

    // Control: with Bun's default autoload the same directory is read, so the fixture is real.
    const control = await Bun.build({
      entrypoints: [entry],
      compile: { target: "bun-linux-x64", outfile: join(work, "control") },
      define: { BUILD_VERSION: '"control"' },
    });
    expect(control.success).toBe(true);
    const c = run([join(work, "control")], { cwd: hostile.dir, env: cleanEnv(hostile.dir) });
    expect(c.stdout).toBe(`{"probe":"from-dotenv","v":"control"}\n`);
    expect(existsSync(hostile.marker)).toBe(true);
  }, 60_000);

  test("PROXYWALL_VERSION overrides the embedded version", () => {
    const out2 = tempDir("version");
    dirs.push(out2);
    const r = run([process.execPath, "build.ts", "--target", "linux-x64", "--outdir", out2, "--no-xz"], {
      env: { ...process.env, PROXYWALL_VERSION: "7.8.9-rc.1" },
    });
    expect(r.code).toBe(0);
    // --no-xz: the binary alone, for local use.
    expect(readdirSync(out2).sort()).toEqual(["SHA256SUMS", "proxywall-linux-x64"]);
    expect(run([join(out2, "proxywall-linux-x64"), "--version"], { cwd: out2 }).stdout).toBe("7.8.9-rc.1\n");
  }, 60_000);

  test("the smoke test rejects a binary that prints the wrong version or no JSON", async () => {
    const work = tempDir("smoke");
    dirs.push(work);
    const fake = join(work, "fake");
    writeFileSync(fake, `#!/bin/sh\n[ "$1" = --version ] && echo 1.0.0 && exit 0\necho not-json\n`, { mode: 0o755 });
    await expect(smoke(fake, "2.0.0")).rejects.toThrow(/--version.*want 2.0.0/);
    await expect(smoke(fake, "1.0.0")).rejects.toThrow(/did not print JSON/);
  });
});

describe("build failures", () => {
  test("an error-level log fails the build even when Bun reports success", () => {
    const logs = [{ level: "error", message: "Failed to generate bytecode" }] as unknown as Bun.BuildOutput["logs"];
    expect(() => checkResult("linux-x64", { success: true, logs })).toThrow(BuildError);
    expect(() => checkResult("linux-x64", { success: false, logs: [] })).toThrow(BuildError);
    const warning = [{ level: "warning", message: "meh" }] as unknown as Bun.BuildOutput["logs"];
    expect(() => checkResult("linux-x64", { success: true, logs: warning })).not.toThrow();
  });

  test("a source that does not compile fails compile()", async () => {
    const work = tempDir("broken");
    try {
      writeFileSync(join(work, "broken.ts"), "export const x = ;\n");
      await expect(compile("linux-x64", join(work, "broken"), "1.0.0", join(work, "broken.ts"))).rejects.toThrow(BuildError);
      expect(existsSync(join(work, "broken"))).toBe(false);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("an unknown target exits non-zero without building", () => {
    const work = tempDir("unknown");
    try {
      const r = run([process.execPath, "build.ts", "--target", "linux-mips", "--outdir", work]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("unknown target linux-mips");
      expect(readdirSync(work)).toEqual([]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

// The acceptance criterion: `bun run build` makes all four binaries and a SHA256SUMS that verifies.
test.if(canRunX64)(
  "bun run build makes four binaries and a matching SHA256SUMS (--no-xz)",
  () => {
    const out = tempDir("release");
    try {
      const env: Record<string, string | undefined> = { ...process.env, PROXYWALL_OUT_DIR: out };
      delete env.PROXYWALL_TARGETS;
      delete env.PROXYWALL_VERSION;
      // Without the .xz assets: packing four 110 MB binaries costs CI two minutes, and the .xz
      // path (packing, SHA256SUMS, unpacking) is tested above on linux-x64.
      const r = run([process.execPath, "run", "build", "--", "--no-xz"], { env });
      if (r.code !== 0) console.error(r.stderr);
      expect(r.code).toBe(0);
      const names = TARGETS.map((t) => `proxywall-${t}`);
      expect(readdirSync(out).sort()).toEqual([...names, "SHA256SUMS"].sort());
      const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
      expect(sums.split("\n").filter(Boolean).map((l) => l.split("  ")[1])).toEqual(names);
      const check = run(["sha256sum", "-c", "SHA256SUMS"], { cwd: out });
      expect(check.code).toBe(0);
      expect(check.stdout).toBe(names.map((n) => `${n}: OK\n`).join(""));

      // Right CPU (ELF e_machine) and right libc (the program interpreter) for each.
      for (const t of TARGETS) {
        const elf = head(join(out, `proxywall-${t}`), 4096);
        expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
        expect(elf.readUInt16LE(18)).toBe(t.includes("arm64") ? 0xb7 : 0x3e);
        expect(elf.includes(t.endsWith("-musl") ? "/lib/ld-musl-" : "/ld-linux-")).toBe(true);
      }
      const native = run([join(out, "proxywall-linux-x64"), "--version"], { cwd: out });
      expect(native.stdout).toBe(`${pkg.version}\n`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
  // Four xz -6 runs of 105-113 MB each on a busy 2-CPU machine.
  1_200_000,
);
