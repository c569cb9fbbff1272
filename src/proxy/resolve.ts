// Names resolved once, by the system resolver (as every client in proxywall's namespace would), with
// a bound on how long it may take. The proxy connects only to the addresses this returned and the
// policy checked: there is no second lookup.
import { lookup } from "node:dns/promises";

/** How long the system resolver may take before the client gets 504. */
const RESOLVE_TIMEOUT_MS = 5000;

/** Every address of `name`, in the resolver's order; rejects with the resolver's code. */
export async function resolveAll(name: string, timeoutMs = RESOLVE_TIMEOUT_MS): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEOUT" })), timeoutMs);
  });
  try {
    const found = await Promise.race([lookup(name, { all: true, verbatim: true }), timeout]);
    return found.map((a) => a.address);
  } finally {
    clearTimeout(timer);
  }
}

