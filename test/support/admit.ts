// An admission for tests of the proxy's mechanics alone (framing, relaying, back-pressure, errors):
// every destination is allowed and names are resolved once. The guard
// and the rules have tests of their own (policy-*.test.ts) and run in every sandbox test; the
// proxy's mechanics tests need loopback origins, which the guard rightly refuses.
import type { Admit, Verdict } from "../../src/proxy/connection.ts";
import { resolveAll } from "../../src/proxy/resolve.ts";
import { resolveRefusal } from "../../src/proxy/refusals.ts";
import { isIP } from "node:net";

export const ALLOWED: Verdict = { allowed: true, outcome: "ok", rule: null, reason: "test: every destination allowed" };

export const admitAll: Admit = async (target) => {
  let addrs = [target.host];
  if (isIP(target.host) === 0) {
    try {
      addrs = await resolveAll(target.host);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return resolveRefusal(err.code, target.host, err.message);
    }
  }
  return { verdict: ALLOWED, addrs, checkHello: () => null };
};
