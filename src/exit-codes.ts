// Exit codes, as documented in the README.
export const EXIT = {
  ok: 0,
  /** A runtime failure after the input was accepted (I/O error, a helper that failed). */
  failure: 1,
  /** The invocation is wrong: unknown flag, bad value, missing argument, unreadable input. */
  usage: 2,
  /** The sandbox could not be built (namespace or rejects), so CMD never started. */
  sandbox: 3,
  /** `run --fail-on-bypass`: CMD succeeded, but it tried to go around the proxy. */
  bypass: 4,
  /** `run --fail-on-bypass`: the fence was changed during the run (whatever CMD's code). */
  fenceChanged: 5,
  /** `run`: CMD exited 0, but event lines were lost and stderr, gone too, could not say so. */
  eventsLost: 6,
} as const;

/** An error that ends proxywall with a given exit code and a one-line message. */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new ExitError(message, EXIT.usage);
