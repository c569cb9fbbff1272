// What cmd.ts (in proxywall) and init.ts (CMD's init, inside the sandbox) share: how the init is
// recognised, what it is told, and the lines it reports on fd 3.
export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** Set in the init's environment only (main.ts checks it first and removes it). */
export const INIT_ENV = "PROXYWALL_INTERNAL_INIT";

/** The init's end of the status pipe. */
export const STATUS_FD = 3;

/**
 * The init's end of the go pipe: it is started while the sandbox is still being built (its own
 * start-up, a second Bun, takes as long as the rest of setup) and runs CMD only when proxywall
 * writes a byte here, after sandbox_ready. End of file instead means setup failed: it exits.
 */
export const GO_FD = 4;

export interface InitConfig {
  /** Whether the init is PID 1 of a PID namespace of its own (else it is a subreaper). */
  pidns: boolean;
  /** --user: CMD's uid, gid and supplementary groups; null keeps proxywall's. */
  user: { uid: number; gid: number; groups: number[] } | null;
  /** --keep-caps: CMD keeps proxywall's capabilities (and setuid programs work). */
  keepCaps: boolean;
  /** Socket families allowed besides unix, inet, inet6 and netlink (--allow-socket-family). */
  families: number[];
}

export type InitMessage =
  | { t: "degraded"; what: "proc" | "bounding"; why: string }
  | { t: "failed"; code: number; why: string }
  | { t: "started"; pid: number }
  | { t: "exit"; exit: number | null; signal: string | null; left: number };
