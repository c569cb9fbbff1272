// Builds the standalone proxywall binaries into dist/ (or $PROXYWALL_OUT_DIR), each also as .xz
// (what install.sh downloads where it can unpack it), writes SHA256SUMS for all of them, and
// smoke-runs the binary that fits this machine.
//
//   bun run build                                  all four Linux targets
//   bun build.ts --target linux-x64 [--target ...] only these (or PROXYWALL_TARGETS=a,b)
//   bun build.ts --outdir /tmp/out                 somewhere other than dist/
//   bun build.ts --no-xz                           without the .xz assets (a build for local use)
//   PROXYWALL_VERSION=1.2.3 bun run build          embed another version than package.json's
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import pkg from "./package.json" with { type: "json" };

export const TARGETS = ["linux-x64", "linux-arm64", "linux-x64-musl", "linux-arm64-musl"] as const;
export type Target = (typeof TARGETS)[number];

const ROOT = import.meta.dir;
const ENTRY = join(ROOT, "src/main.ts");
/** Worker files: each must be an entrypoint too, or its `new Worker(...)` silently never runs. */
const WORKERS = [join(ROOT, "src/monitor/watch-worker.ts"), join(ROOT, "src/proxy/splice-worker.ts")];

export class BuildError extends Error {}

function options() {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      target: { type: "string", multiple: true },
      outdir: { type: "string" },
      "no-xz": { type: "boolean" },
    },
    strict: true,
  });
  const wanted = values.target ?? process.env.PROXYWALL_TARGETS?.split(",").filter(Boolean) ?? [...TARGETS];
  for (const t of wanted) {
    if (!(TARGETS as readonly string[]).includes(t)) throw new BuildError(`unknown target ${t} (one of ${TARGETS.join(", ")})`);
  }
  // Keep the canonical order so SHA256SUMS does not depend on how the targets were spelled.
  const targets = TARGETS.filter((t) => wanted.includes(t));
  const outdir = resolve(values.outdir ?? process.env.PROXYWALL_OUT_DIR ?? join(ROOT, "dist"));
  const version = process.env.PROXYWALL_VERSION || pkg.version;
  if (!/^[0-9A-Za-z][0-9A-Za-z.+-]*$/.test(version)) throw new BuildError(`bad version ${JSON.stringify(version)}`);
  return { targets, outdir, version, xz: !values["no-xz"] };
}

/** Compiles `entry` (src/main.ts unless a test says otherwise) into a standalone binary. */
export async function compile(target: Target, outfile: string, version: string, entry = ENTRY): Promise<void> {
  // A failed build must not leave last time's binary looking like this one.
  await rm(outfile, { force: true });
  const result = await Bun.build({
    entrypoints: entry === ENTRY ? [entry, ...WORKERS] : [entry],
    compile: {
      target: `bun-${target}`,
      outfile,
      // Without these the binary reads ./bunfig.toml (running its preload scripts) and ./.env from
      // whatever directory it is started in: code execution for whoever owns that directory.
      autoloadBunfig: false,
      autoloadDotenv: false,
    },
    // Bytecode needs ESM here: the default (CJS) cannot bytecode-compile consola's import.meta,
    // logs an error, still "succeeds", and the binary dies at start.
    bytecode: true,
    format: "esm",
    // Without splitting, the lazily imported subcommands' `node:tty`/`node:util`/`node:fs` imports
    // are hoisted into the one bundle and linked at start: `--version` took 14 ms instead of 7.
    splitting: true,
    minify: true,
    define: { BUILD_VERSION: JSON.stringify(version) },
    throw: false,
  });
  checkResult(target, result);
  if (!existsSync(outfile)) throw new BuildError(`${target}: build reported success but ${outfile} is missing`);
}

/** Throws unless the build succeeded with no error-level log: a failed bytecode step only logs. */
export function checkResult(target: string, result: Pick<Bun.BuildOutput, "success" | "logs">): void {
  for (const log of result.logs) console.error(`  ${target}: ${log.level}: ${log.message}`);
  const errors = result.logs.filter((l) => l.level === "error").length;
  if (!result.success || errors > 0) {
    throw new BuildError(`${target}: build failed (${errors} error(s) logged${result.success ? ", though Bun reported success" : ""})`);
  }
}

/**
 * Writes `file`.xz next to `file` and returns its size. xz -6 (the default preset): a 112 MB binary
 * becomes 40 MB, and unpacking needs about 10 MB of memory, which busybox's unxz has too. -9e
 * saved 2 % more for four times the time and 700 MB of memory.
 */
export async function compressXz(file: string): Promise<number> {
  const xz = Bun.which("xz");
  if (!xz) throw new BuildError("xz not found: install xz-utils (apt-get install xz-utils), or build with --no-xz");
  const out = `${file}.xz`;
  await rm(out, { force: true });
  // -T0: one thread per CPU; the stream is then cut in blocks, which busybox unxz reads as well.
  const p = Bun.spawn([xz, "-6", "-T0", "--keep", "--force", file], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0 || !existsSync(out)) throw new BuildError(`xz ${basename(file)}: exit ${code}: ${stderr.trim()}`);
  return Bun.file(out).size;
}

export async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** The target whose binary runs on this machine, if we built one. */
export function nativeTarget(): Target | undefined {
  if (process.platform !== "linux") return undefined;
  const arch = process.arch === "x64" ? "x64" : process.arch === "arm64" ? "arm64" : undefined;
  if (!arch) return undefined;
  // process.report says which libc this bun itself runs on; the host's is the same.
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? `linux-${arch}` : `linux-${arch}-musl`;
}

function run(bin: string, args: string[], cwd: string): { code: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync([bin, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** Fails unless `bin --version` prints `version` and `bin schema` prints JSON. */
export async function smoke(bin: string, version: string): Promise<void> {
  // An empty cwd, so nothing lying around in the checkout can make a broken binary look fine.
  const cwd = await mkdtemp(join(tmpdir(), "proxywall-smoke-"));
  try {
    const v = run(bin, ["--version"], cwd);
    if (v.code !== 0 || v.stdout.trim() !== version) {
      throw new BuildError(`smoke: ${basename(bin)} --version: exit ${v.code}, printed ${JSON.stringify(v.stdout.trim())}, want ${version}\n${v.stderr}`);
    }
    const s = run(bin, ["schema"], cwd);
    if (s.code !== 0) throw new BuildError(`smoke: ${basename(bin)} schema: exit ${s.code}\n${s.stderr}`);
    try {
      JSON.parse(s.stdout);
    } catch {
      throw new BuildError(`smoke: ${basename(bin)} schema did not print JSON: ${s.stdout.slice(0, 200)}`);
    }
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const { targets, outdir, version, xz } = options();
  await mkdir(outdir, { recursive: true });
  // Written last, only once everything passed: its presence means the set is good.
  const sumsFile = join(outdir, "SHA256SUMS");
  await rm(sumsFile, { force: true });
  const sums: string[] = [];
  // Each binary is compressed while the next one compiles.
  const packing: Promise<string>[] = [];
  for (const target of targets) {
    const name = `proxywall-${target}`;
    const outfile = join(outdir, name);
    const t0 = performance.now();
    await rm(`${outfile}.xz`, { force: true });
    await compile(target, outfile, version);
    const size = Bun.file(outfile).size;
    console.error(`built ${name} ${version}: ${mb(size)} (${seconds(t0)})`);
    sums.push(`${await sha256(outfile)}  ${name}\n`);
    if (xz) {
      const t1 = performance.now();
      const packed = compressXz(outfile).then(async (bytes) => {
        console.error(`packed ${name}.xz: ${mb(bytes)}, ${((100 * bytes) / size).toFixed(0)} % (${seconds(t1)})`);
        return `${await sha256(`${outfile}.xz`)}  ${name}.xz\n`;
      });
      // Reported by the Promise.all below, not as an unhandled rejection while the next compiles.
      packed.catch(() => {});
      packing.push(packed);
    }
  }
  sums.push(...(await Promise.all(packing)));

  const native = nativeTarget();
  if (native && targets.includes(native)) {
    await smoke(join(outdir, `proxywall-${native}`), version);
    console.error(`smoke-tested proxywall-${native}: --version and schema work`);
  } else {
    console.error(`warning: no binary for this machine was built (${native ?? "unsupported host"}); smoke test skipped`);
  }
  await Bun.write(sumsFile, sums.join(""));
  console.error(`wrote ${sumsFile}`);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`build: ${e instanceof BuildError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  });
}
