// /etc/hosts and /etc/resolv.conf of a test's own, for one command: the command runs in a mount
// namespace of its own (unshare -m, private propagation) where both files are bind mounts of files
// the test wrote. Names then resolve to the test's namespaces (or through its own DNS server), and
// nothing changes on the host: the bind mounts vanish with the mount namespace.
import { chmodSync, writeFileSync } from "node:fs";
import type { TempDir } from "./temp.ts";

/**
 * A prefix for Bun.spawn (or proxywall's `prefix` option): `[...prefix, cmd, ...args]` runs cmd
 * with these files as /etc/hosts and /etc/resolv.conf. They are written into `dir` (made readable
 * to every user, for a CMD run with --user).
 */
export function withEtcFiles(dir: TempDir, tag: string, files: { hosts: string; resolvConf: string }): string[] {
  chmodSync(dir.root, 0o755);
  const hosts = dir.path(`${tag}.hosts`);
  const resolv = dir.path(`${tag}.resolv.conf`);
  writeFileSync(hosts, files.hosts, { mode: 0o644 });
  writeFileSync(resolv, files.resolvConf, { mode: 0o644 });
  const script = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"';
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", hosts, resolv];
}

/** A hosts file: localhost as usual, then `name address` pairs. */
export function hostsFile(entries: Record<string, string>): string {
  return ["127.0.0.1 localhost", "::1 localhost", ...Object.entries(entries).map(([n, a]) => `${a} ${n}`)].join("\n") + "\n";
}

/** A resolv.conf that asks only `server`, once, and gives up after a second. */
export function resolvConf(server: string): string {
  return `nameserver ${server}\noptions timeout:1 attempts:1\n`;
}
