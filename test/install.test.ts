// install.sh, piped into dash and busybox sh as `curl ... | sh` would, against a release served from
// 127.0.0.1. The release holds small fake "binaries" (shell scripts that answer --version), each also
// as .xz, as build.ts makes them; one test also installs the real compiled binary when dist/ has one.
import { afterAll, afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";

const ROOT = join(import.meta.dir, "..");
const SCRIPT = readFileSync(join(ROOT, "install.sh"));
const ASSETS = ["proxywall-linux-x64", "proxywall-linux-arm64", "proxywall-linux-x64-musl", "proxywall-linux-arm64-musl"];
const LATEST = "0.9.0";

// Each test runs the script once or twice under a shell, downloading from a server of its own:
// seconds on a busy 2-CPU machine.
setDefaultTimeout(60_000);

const which = (name: string) => Bun.which(name) ?? undefined;
const DASH = which("dash");
const BUSYBOX = which("busybox");
const XZ = which("xz");
/** Tools that could unpack .xz: a PATH without them makes install.sh take the binary as it is. */
const UNXZ_TOOLS = new Set(["xz", "unxz", "xzcat", "busybox"]);

// Every test's temp dirs go here and are removed after it, pass or fail.
let temps: string[] = [];
afterEach(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
  temps = [];
});
function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `proxywall-install-test-${tag}-`));
  temps.push(d);
  return d;
}

function sha256(data: string | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

function fakeBinary(version: string): string {
  return `#!/bin/sh\nif [ "$1" = --version ]; then echo ${version}; exit 0; fi\necho "fake proxywall $version"\n`;
}

/** `content` packed by the xz command (as build.ts packs the release). */
function xzOf(content: string | Uint8Array): Uint8Array {
  const p = Bun.spawnSync([XZ!, "-6", "-c"], { stdin: typeof content === "string" ? new TextEncoder().encode(content) : content, stdout: "pipe", stderr: "pipe" });
  expect(p.exitCode).toBe(0);
  return p.stdout;
}

/** Writes the assets (each also as .xz, where xz is installed) and SHA256SUMS of one release into dir. */
function writeRelease(dir: string, version: string, body: (asset: string) => string = () => fakeBinary(version), packed = !!XZ): void {
  mkdirSync(dir, { recursive: true });
  let sums = "";
  let xzSums = "";
  for (const asset of ASSETS) {
    const content = body(asset);
    writeFileSync(join(dir, asset), content, { mode: 0o755 });
    sums += `${sha256(content)}  ${asset}\n`;
    if (packed) {
      const xz = xzOf(content);
      writeFileSync(join(dir, `${asset}.xz`), xz);
      xzSums += `${sha256(xz)}  ${asset}.xz\n`;
    }
  }
  writeFileSync(join(dir, "SHA256SUMS"), sums + xzSums);
}

/** Replaces one line of dir's SHA256SUMS: `name` gets the sum of `content`. */
function setSum(dir: string, name: string, content: string | Uint8Array): void {
  const file = join(dir, "SHA256SUMS");
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean).filter((l) => l.split("  ")[1] !== name);
  writeFileSync(file, [...lines, `${sha256(content)}  ${name}`].join("\n") + "\n");
}

let noUnxzDir: string | null = null;
afterAll(() => {
  if (noUnxzDir) rmSync(noUnxzDir, { recursive: true, force: true });
});

/**
 * A PATH like this one, but with no tool that unpacks .xz (symbolic links, first of each name);
 * made once for the file (a thousand links), removed after it.
 */
function pathWithoutUnxz(): string {
  if (noUnxzDir) return noUnxzDir;
  const dir = (noUnxzDir = mkdtempSync(join(tmpdir(), "proxywall-install-test-no-xz-bin-")));
  const seen = new Set<string>();
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (seen.has(name) || UNXZ_TOOLS.has(name)) continue;
      seen.add(name);
      symlinkSync(join(d, name), join(dir, name));
    }
  }
  return dir;
}

/** A release tree: the latest at the top, pinned versions under v<version>/. */
function releaseTree(): string {
  const root = tempDir("www");
  writeRelease(root, LATEST);
  writeRelease(join(root, "v1.2.3"), "1.2.3");
  return root;
}

/** Serves `root` on 127.0.0.1 and records every path asked for. */
function serve(root: string) {
  const paths: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = decodeURIComponent(new URL(req.url).pathname);
      paths.push(path);
      const file = normalize(join(root, path));
      if (!file.startsWith(root + "/") || !existsSync(file) || !statSync(file).isFile()) return new Response("not found", { status: 404 });
      return new Response(Bun.file(file));
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, paths, stop: () => server.stop(true) };
}

type Result = { code: number; stdout: string; stderr: string; installDir: string; tmp: string };

/**
 * Pipes `script` into `shell` the way `curl | sh` does. Spawned asynchronously: the server answering
 * it runs on this same event loop. PATH, HOME and TMPDIR are the test's own; no proxy variables.
 */
async function install(shell: string[], baseUrl: string, opts: { env?: Record<string, string>; script?: Uint8Array; installDir?: string } = {}): Promise<Result> {
  const home = tempDir("home");
  const tmp = tempDir("tmp");
  const installDir = opts.installDir ?? join(tempDir("dest"), "bin");
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    TMPDIR: tmp,
    PROXYWALL_BASE_URL: baseUrl,
    PROXYWALL_INSTALL_DIR: installDir,
    ...opts.env,
  };
  const p = Bun.spawn(shell, { cwd: home, env, stdin: opts.script ?? SCRIPT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr, installDir, tmp };
}

function runInstalled(path: string): string {
  const p = Bun.spawnSync([path, "--version"], { stdout: "pipe", stderr: "pipe" });
  expect(p.exitCode).toBe(0);
  return p.stdout.toString();
}

/** After a failure: one error line, nothing installed, no dir created, no temp files left. */
function expectNothingInstalled(r: Result, message: RegExp): void {
  expect(r.code).not.toBe(0);
  const errors = r.stderr.split("\n").filter((l) => l.includes("error"));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(message);
  expect(r.stdout).toBe("");
  expect(existsSync(r.installDir)).toBe(false);
  expect(readdirSync(r.tmp)).toEqual([]);
}

/** The host's own asset name as install.sh should pick it (this machine: glibc, by getconf). */
function hostAsset(): string {
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const glibc = Bun.spawnSync(["getconf", "GNU_LIBC_VERSION"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  return `proxywall-linux-${arch}${glibc ? "" : "-musl"}`;
}

/** A PATH with busybox applets only, like a bare Alpine: no curl, no getconf, no ldd. */
function busyboxPath(): string {
  const dir = tempDir("busybox-bin");
  const applets = Bun.spawnSync([BUSYBOX!, "--list"]).stdout.toString().split("\n").filter(Boolean);
  for (const a of applets) symlinkSync(BUSYBOX!, join(dir, a));
  return dir;
}

describe.skipIf(!DASH)("install.sh under dash", () => {
  test("installs the latest release, executable, and says so in one line", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([DASH!], srv.url);
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(readdirSync(r.installDir)).toEqual(["proxywall"]);
      const bin = join(r.installDir, "proxywall");
      expect(statSync(bin).mode & 0o111).toBe(0o111);
      expect(runInstalled(bin)).toBe(`${LATEST}\n`);
      expect(r.stdout).toBe(`installed proxywall ${LATEST} (${hostAsset()}, sha256 verified) to ${bin}\n`);
      // xz is installed here (.ci/run): the .xz only, never the binary as well.
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${hostAsset()}${XZ ? ".xz" : ""}`].sort());
      expect(readdirSync(r.tmp)).toEqual([]);
    } finally {
      srv.stop();
    }
  });

  test("PROXYWALL_VERSION fetches from /v<version>/", async () => {
    const srv = serve(releaseTree());
    try {
      for (const pinned of ["1.2.3", "v1.2.3"]) {
        srv.paths.length = 0;
        const r = await install([DASH!], srv.url, { env: { PROXYWALL_VERSION: pinned } });
        expect(r.code).toBe(0);
        expect(srv.paths.sort()).toEqual(["/v1.2.3/SHA256SUMS", `/v1.2.3/${hostAsset()}${XZ ? ".xz" : ""}`].sort());
        expect(runInstalled(join(r.installDir, "proxywall"))).toBe("1.2.3\n");
      }
    } finally {
      srv.stop();
    }
  });

  test("a tampered binary is refused and the existing install is left alone", async () => {
    const root = releaseTree();
    writeFileSync(join(root, hostAsset()), fakeBinary("6.6.6"), { mode: 0o755 });
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url, { env: { PATH: pathWithoutUnxz() } });
      expectNothingInstalled(r, /checksum mismatch for proxywall-linux/);

      // Over an existing install: the old binary stays, and nothing is left beside it.
      const dest = tempDir("existing");
      writeFileSync(join(dest, "proxywall"), fakeBinary("0.0.1"), { mode: 0o755 });
      const again = await install([DASH!], srv.url, { installDir: dest, env: { PATH: pathWithoutUnxz() } });
      expect(again.code).not.toBe(0);
      expect(readdirSync(dest)).toEqual(["proxywall"]);
      expect(runInstalled(join(dest, "proxywall"))).toBe("0.0.1\n");
    } finally {
      srv.stop();
    }
  });

  test("a binary that does not run is not installed", async () => {
    const root = tempDir("www");
    writeRelease(root, LATEST, () => "#!/bin/sh\necho 'cannot load libstdc++.so.6' >&2\nexit 127\n");
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url);
      expectNothingInstalled(r, /does not run here.*libstdc\+\+/);
    } finally {
      srv.stop();
    }
  });

  test("a pinned version that answers with another version is not installed", async () => {
    const root = tempDir("www");
    writeRelease(join(root, "v1.2.3"), "1.2.4");
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url, { env: { PROXYWALL_VERSION: "1.2.3" } });
      expectNothingInstalled(r, /asked for version 1\.2\.3 but the download is version 1\.2\.4/);
    } finally {
      srv.stop();
    }
  });

  test("a missing release file fails with the URL", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([DASH!], srv.url, { env: { PROXYWALL_VERSION: "4.0.0" } });
      expectNothingInstalled(r, /download failed: http:\/\/127\.0\.0\.1:\d+\/v4\.0\.0\/SHA256SUMS/);
    } finally {
      srv.stop();
    }
  });

  test("SHA256SUMS without an entry for the asset is refused", async () => {
    const root = releaseTree();
    writeFileSync(join(root, "SHA256SUMS"), `${"0".repeat(64)}  something-else\n`);
    const srv = serve(root);
    try {
      expectNothingInstalled(await install([DASH!], srv.url), /SHA256SUMS has no valid entry/);
    } finally {
      srv.stop();
    }
  });

  test("PROXYWALL_LIBC=musl picks the musl build", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([DASH!], srv.url, { env: { PROXYWALL_LIBC: "musl" } });
      expect(r.code).toBe(0);
      expect(srv.paths).toContain(`/${hostAsset().replace(/-musl$/, "")}-musl${XZ ? ".xz" : ""}`);
    } finally {
      srv.stop();
    }
  });

  test("a non-root user gets ~/.local/bin and a PATH note", async () => {
    const srv = serve(releaseTree());
    const shim = tempDir("shim");
    writeFileSync(join(shim, "id"), "#!/bin/sh\necho 1000\n", { mode: 0o755 });
    try {
      const home = tempDir("user");
      const r = await install([DASH!], srv.url, {
        env: { PATH: `${shim}:${process.env.PATH}`, HOME: home, PROXYWALL_INSTALL_DIR: "" },
      });
      expect(r.code).toBe(0);
      expect(runInstalled(join(home, ".local/bin/proxywall"))).toBe(`${LATEST}\n`);
      expect(r.stderr).toContain(`note: ${home}/.local/bin is not on your PATH`);
    } finally {
      srv.stop();
    }
  });

  test("a truncated script does nothing", async () => {
    const srv = serve(releaseTree());
    try {
      const half = SCRIPT.subarray(0, Math.floor(SCRIPT.length / 2));
      const r = await install([DASH!], srv.url, { script: half });
      expect(srv.paths).toEqual([]);
      expect(existsSync(r.installDir)).toBe(false);
      expect(r.stdout).toBe("");
      expect(readdirSync(r.tmp)).toEqual([]);
    } finally {
      srv.stop();
    }
  });
});

describe.skipIf(!DASH || !XZ)("install.sh and the .xz assets (dash)", () => {
  const asset = hostAsset();

  test("without xz, unxz, xzcat or busybox: the binary as it is, and no .xz", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([DASH!], srv.url, { env: { PATH: pathWithoutUnxz() } });
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${asset}`].sort());
      expect(runInstalled(join(r.installDir, "proxywall"))).toBe(`${LATEST}\n`);
      expect(readdirSync(r.tmp)).toEqual([]);
    } finally {
      srv.stop();
    }
  });

  test.skipIf(!BUSYBOX)("with busybox as the only unpacker (no xz links), busybox unxz unpacks the .xz", async () => {
    const srv = serve(releaseTree());
    const only = tempDir("only-busybox");
    symlinkSync(BUSYBOX!, join(only, "busybox"));
    try {
      const r = await install([DASH!], srv.url, { env: { PATH: `${pathWithoutUnxz()}:${only}` } });
      expect(r.code).toBe(0);
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${asset}.xz`].sort());
      expect(runInstalled(join(r.installDir, "proxywall"))).toBe(`${LATEST}\n`);
    } finally {
      srv.stop();
    }
  });

  test("an older release without .xz in its SHA256SUMS: the binary as it is", async () => {
    const root = tempDir("www");
    writeRelease(root, LATEST, undefined, false);
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url);
      expect(r.code).toBe(0);
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${asset}`].sort());
      expect(runInstalled(join(r.installDir, "proxywall"))).toBe(`${LATEST}\n`);
    } finally {
      srv.stop();
    }
  });

  test("a tampered .xz is refused before it is unpacked, and nothing else is fetched", async () => {
    const root = releaseTree();
    writeFileSync(join(root, `${asset}.xz`), xzOf(fakeBinary("6.6.6")));
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url);
      expectNothingInstalled(r, new RegExp(`checksum mismatch for ${asset}\\.xz \\(expected [0-9a-f]{64}, got [0-9a-f]{64}\\): not installed`));
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${asset}.xz`].sort());
    } finally {
      srv.stop();
    }
  });

  test("an .xz that matches its own sum but unpacks to another binary is refused", async () => {
    const root = releaseTree();
    const other = xzOf(fakeBinary("6.6.6"));
    writeFileSync(join(root, `${asset}.xz`), other);
    setSum(root, `${asset}.xz`, other);
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url);
      expectNothingInstalled(r, new RegExp(`checksum mismatch for ${asset} \\(unpacked from ${asset}\\.xz\\)`));
    } finally {
      srv.stop();
    }
  });

  test("an .xz that cannot be downloaded or unpacked: the binary as it is, still verified", async () => {
    const missing = releaseTree();
    rmSync(join(missing, `${asset}.xz`));
    const broken = releaseTree();
    writeFileSync(join(broken, `${asset}.xz`), "not xz data\n");
    setSum(broken, `${asset}.xz`, "not xz data\n");
    for (const [root, said] of [
      [missing, `could not download ${asset}.xz`],
      [broken, `xz could not unpack ${asset}.xz`],
    ] as const) {
      const srv = serve(root);
      try {
        const r = await install([DASH!], srv.url);
        expect(r.code).toBe(0);
        expect(r.stderr).toContain(`${said} (`);
        expect(r.stderr).toContain(`); downloading ${asset} instead`);
        expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${asset}.xz`, `/${asset}`].sort());
        expect(runInstalled(join(r.installDir, "proxywall"))).toBe(`${LATEST}\n`);
        expect(readdirSync(r.tmp)).toEqual([]);
      } finally {
        srv.stop();
      }
    }
  });
});

describe.skipIf(!BUSYBOX)("install.sh under busybox sh", () => {
  test("installs with busybox applets only (wget, busybox sha256sum, no getconf)", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([BUSYBOX!, "sh"], srv.url, { env: { PATH: busyboxPath() } });
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(runInstalled(join(r.installDir, "proxywall"))).toBe(`${LATEST}\n`);
      // busybox's own xz applet unpacks the .xz.
      expect(srv.paths.sort()).toEqual(["/SHA256SUMS", `/${hostAsset()}${XZ ? ".xz" : ""}`].sort());
      expect(readdirSync(r.tmp)).toEqual([]);
    } finally {
      srv.stop();
    }
  });

  test("refuses a tampered binary, packed or not", async () => {
    const root = releaseTree();
    for (const a of ASSETS) writeFileSync(join(root, a), fakeBinary("6.6.6"), { mode: 0o755 });
    for (const a of XZ ? ASSETS : []) writeFileSync(join(root, `${a}.xz`), xzOf(fakeBinary("6.6.6")));
    const srv = serve(root);
    try {
      const r = await install([BUSYBOX!, "sh"], srv.url, { env: { PATH: busyboxPath() } });
      expectNothingInstalled(r, /checksum mismatch/);
    } finally {
      srv.stop();
    }
  });

  test("a truncated script does nothing", async () => {
    const srv = serve(releaseTree());
    try {
      const r = await install([BUSYBOX!, "sh"], srv.url, { script: SCRIPT.subarray(0, Math.floor(SCRIPT.length / 2)) });
      expect(srv.paths).toEqual([]);
      expect(existsSync(r.installDir)).toBe(false);
    } finally {
      srv.stop();
    }
  });
});

const realBinary = join(ROOT, "dist/proxywall-linux-x64");
const realRuns =
  process.platform === "linux" &&
  process.arch === "x64" &&
  existsSync(realBinary) &&
  Bun.spawnSync([realBinary, "--version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

test.if(!!DASH && realRuns && hostAsset() === "proxywall-linux-x64")(
  "installs the real compiled binary from dist/",
  async () => {
    const root = tempDir("www-real");
    symlinkSync(realBinary, join(root, "proxywall-linux-x64"));
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const chunk of Bun.file(realBinary).stream()) hasher.update(chunk);
    writeFileSync(join(root, "SHA256SUMS"), `${hasher.digest("hex")}  proxywall-linux-x64\n`);
    const srv = serve(root);
    try {
      const r = await install([DASH!], srv.url);
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      const installed = join(r.installDir, "proxywall");
      expect(runInstalled(installed)).toBe(runInstalled(realBinary));
    } finally {
      srv.stop();
    }
  },
  60_000,
);

test.skipIf(!which("shellcheck") && !process.env.CI)("install.sh is shellcheck -s sh clean", () => {
  const p = Bun.spawnSync(["shellcheck", "-s", "sh", join(ROOT, "install.sh")], { stdout: "pipe", stderr: "pipe" });
  expect(p.stdout.toString() + p.stderr.toString()).toBe("");
  expect(p.exitCode).toBe(0);
});
