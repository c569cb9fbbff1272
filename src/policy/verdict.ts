// What a decision answers. Verdicts that do not name the address (a rule's, the defaults', a guard
// row's own) are made once, when the policy is loaded, and shared: frozen, so that a caller that
// tried to change one would fail loudly instead of changing every later decision.

export type Mode = "enforce" | "audit";

export interface Verdict {
  allowed: boolean;
  outcome: "ok" | "denied" | "would_deny";
  /** The rule that decided, as written (`*.example.com:443`), or null for the guard and defaults. */
  rule: string | null;
  /** e.g. "guard: loopback 127.0.0.0/8", "deny *.example.com:443", "default: no allow rule matched". */
  reason: string;
}

export function allowVerdict(rule: string | null, reason: string): Verdict {
  return Object.freeze({ allowed: true, outcome: "ok", rule, reason });
}

/** A refusal by a rule or the default: denied when enforcing, reported when auditing. */
export function refuseVerdict(mode: Mode, rule: string | null, reason: string): Verdict {
  return Object.freeze(mode === "audit" ? { allowed: true, outcome: "would_deny", rule, reason } : { allowed: false, outcome: "denied", rule, reason });
}

/** The guard refuses in either mode. */
export function guardVerdict(reason: string): Verdict {
  return Object.freeze({ allowed: false, outcome: "denied", rule: null, reason });
}
