// Running CMD inside the sandbox and waiting for it, like tini: the signals proxywall gets are
// passed on, and its exit status is CMD's (128+N when a signal N ended it).
import { constants } from "node:os";
import { diag } from "../diag.ts";
import { proxyEnv } from "../plan/sandbox-plan.ts";
import { inNetns } from "../sys/netns.ts";
import { signalExit } from "./setup.ts";

export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export interface CmdResult {
  code: number;
  exit: number | null;
  signal: string | null;
}

/** Starts CMD in the namespace at `nsPath`; null (with code 126/127) when it cannot be executed. */
export function spawnCmd(cmd: string[], nsPath: string, proxyUrl: string, user: { uid: number; gid: number } | null): Bun.Subprocess | CmdResult {
  try {
    return inNetns(nsPath, () =>
      Bun.spawn(cmd, {
        env: proxyEnv(process.env, proxyUrl),
        stdio: ["inherit", "inherit", "inherit"],
        ...(user ? { uid: user.uid, gid: user.gid } : {}),
      }),
    );
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const notFound = err.code === "ENOENT" || /no such file|not found/i.test(err.message);
    diag.error(`cannot run ${cmd[0]}: ${notFound ? "command not found" : err.code === "EACCES" ? "permission denied" : err.message}`);
    return { code: notFound ? 127 : 126, exit: null, signal: null };
  }
}

export async function waitCmd(child: Bun.Subprocess): Promise<CmdResult> {
  await child.exited;
  const sc = child.signalCode;
  const signal = typeof sc === "number" ? (Object.entries(constants.signals).find(([, n]) => n === sc)?.[0] ?? String(sc)) : sc;
  const exit = child.exitCode;
  return { code: signal ? signalExit(signal) : (exit ?? 1), exit, signal };
}
