// Minimal root filesystems built from Debian's packages (mmdebstrap, variant minbase: the essential
// packages and apt, no netbase, so no /etc/protocols or /etc/services), holding only what the
// README says an image needs, and a way to run the compiled proxywall inside one as a container
// runtime would: its own mount and PID namespaces, a different root (read-only, with tmpfs /run,
// /tmp and a minimal /dev), in a network namespace the test made.
//
// Built once per package list and cached outside the repository (ROOTFS_CACHE/<key>), so CI on the
// same machine reuses it; a fresh machine builds each in about 25 s. Tests never write into a
// cached tree: the runner mounts it read-only and binds the binary over a tmpfs.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { splitStderr } from "./events.ts";
import type { Run } from "./cli.ts";

export const ROOTFS_CACHE = process.env.PROXYWALL_ROOTFS_CACHE ?? "/var/cache/proxywall-test-rootfs";

/** Bumped when the way a tree is built changes, so an old cache entry is never mistaken for a new one. */
const RECIPE = 1;

const which = (name: string) => ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map((d) => `${d}/${name}`).find((p) => existsSync(p)) ?? null;
export const MMDEBSTRAP = which("mmdebstrap");

/** The host's own apt sources (deb822 or one-line), which mmdebstrap takes as its mirror. */
function hostSources(): { files: string[]; text: string } {
  const files = [
    ...(existsSync("/etc/apt/sources.list") && statSync("/etc/apt/sources.list").size > 0 ? ["/etc/apt/sources.list"] : []),
    ...(existsSync("/etc/apt/sources.list.d") ? readdirSync("/etc/apt/sources.list.d").filter((f) => /\.(list|sources)$/.test(f)).sort().map((f) => `/etc/apt/sources.list.d/${f}`) : []),
  ];
  return { files, text: files.map((f) => readFileSync(f, "utf8")).join("\n") };
}

function codename(): string {
  const m = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync("/etc/os-release", "utf8"));
  if (!m) throw new Error("/etc/os-release names no VERSION_CODENAME: cannot pick the Debian suite");
  return m[1]!.replace(/"/g, "");
}

export interface Rootfs {
  dir: string;
  packages: string[];
  /** Built by this call (false: taken from the cache). */
  built: boolean;
  ms: number;
}

/**
 * The cached minimal root filesystem with `packages` (besides minbase), built now when missing.
 * Built into a temporary directory and renamed into place, so an interrupted build never leaves a
 * tree that looks finished.
 */
export async function minimalRootfs(packages: readonly string[]): Promise<Rootfs> {
  if (!MMDEBSTRAP) throw new Error("mmdebstrap is not installed (apt-get install mmdebstrap; .ci/run installs it)");
  const suite = codename();
  const sources = hostSources();
  const sorted = [...packages].sort();
  const key = createHash("sha256").update(JSON.stringify({ RECIPE, suite, sorted, sources: sources.text })).digest("hex").slice(0, 16);
  const dir = join(ROOTFS_CACHE, `${sorted.join("+") || "minbase"}-${key}`);
  if (existsSync(join(dir, ".complete"))) return { dir, packages: sorted, built: false, ms: 0 };
  mkdirSync(ROOTFS_CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const t0 = performance.now();
  const args = [
    MMDEBSTRAP,
    "--quiet",
    "--variant=minbase",
    "--mode=root",
    "--format=directory",
    // As `apt-get install --no-install-recommends`, the way the README's images install them.
    '--aptopt=APT::Install-Recommends "false"',
    // Smaller trees, as slim images do; nothing here reads them.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    ...(sorted.length > 0 ? [`--include=${sorted.join(",")}`] : []),
    suite,
    tmp,
    // The host's own sources: the mirror this machine already uses.
    ...sources.files,
  ];
  // Asynchronous, so that several trees download and unpack at once (the network is the slow part).
  const p = Bun.spawn(args, { stdin: "ignore", stdout: "ignore", stderr: "pipe", timeout: 600_000 });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`mmdebstrap ${sorted.join(",")}: exit ${code}: ${stderr.trim().split("\n").slice(-5).join(" | ")}`);
  }
  writeFileSync(join(tmp, ".complete"), `${sorted.join(" ")}\n`);
  try {
    renameSync(tmp, dir);
  } catch (e) {
    // Another test process finished the same tree first: theirs is as good.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, ".complete"))) throw e;
  }
  return { dir, packages: sorted, built: true, ms: performance.now() - t0 };
}

/**
 * Runs as PID 1 of new mount and PID namespaces (unshare --fork): mounts the tree read-only on
 * itself, /proc of the new PID namespace, tmpfs /run (RUN_OPTS: its mount options), /tmp and /dev
 * with a few device nodes bound from the host's, the binary bound to /usr/local/bin/proxywall, then
 * pivot_root, a clean environment, and (with AS_USER) setpriv to a non-root user that keeps
 * CAP_NET_ADMIN and CAP_SYS_ADMIN as ambient capabilities, as `docker run --user U --cap-add` gives.
 */
const ENTER = String.raw`
root=$1 bin=$2; shift 2
mount --make-rprivate /
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o "size=16m,$RUN_OPTS" tmpfs "$root/run"
mount -t tmpfs -o mode=1777,size=16m tmpfs "$root/tmp"
mount -t tmpfs -o mode=755,size=1m tmpfs "$root/dev"
for d in null zero full random urandom tty; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=755,size=1m tmpfs "$root/usr/local/bin"
: > "$root/usr/local/bin/proxywall"
mount --bind "$bin" "$root/usr/local/bin/proxywall"
if [ -n "$AS_USER" ]; then
  set -- setpriv --reuid="$AS_USER" --regid="$AS_USER" --clear-groups --inh-caps="$AS_CAPS" --ambient-caps="$AS_CAPS" -- "$@"
fi
# pivot_root, as runtimes do (a chroot would leave the host's tree reachable and paths read from
# /proc/PID/exe in a nested mount namespace would name it): the old root goes on top, then away.
cd "$root"
pivot_root . .
umount -l .
cd /
exec /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp "$@"
`;

export interface InRootfs {
  /** The network namespace the "container" gets (a test namespace), as a path. */
  netns: string;
  /** Mount options of the tmpfs /run: "mode=755" (default), "ro", "uid=65534,mode=755". */
  run?: string;
  /** A uid to run as (with CAP_NET_ADMIN and CAP_SYS_ADMIN kept), instead of root. */
  user?: number;
  /** The capabilities the user keeps (setpriv's list). */
  caps?: string;
  timeoutMs?: number;
}

/** Runs `cmd` (e.g. ["proxywall", "run", "--", ...]) inside `root` with `bin` as proxywall. */
export async function inRootfs(root: string, bin: string, cmd: string[], o: InRootfs): Promise<Run> {
  const p = Bun.spawn(["nsenter", `--net=${o.netns}`, "unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-ec", ENTER, "enter", root, bin, ...cmd], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", RUN_OPTS: o.run ?? "mode=755", AS_USER: o.user === undefined ? "" : String(o.user), AS_CAPS: o.caps ?? "+net_admin,+sys_admin" },
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr, ...splitStderr(stderr) };
}
