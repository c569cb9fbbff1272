// Which kernel messages are proxywall's bypass records, told by the log prefix glued to "IN=".
// iptables keeps at most 29 characters of --log-prefix and drops the rest without a word, so a
// longer prefix must also match its 29-character truncation.

export const IPTABLES_PREFIX_MAX = 29;
const OWN_PREFIX = /^proxywall:([0-9a-f]{8}):$/;

/** The printk/NFLOG prefix of sandbox `id`: 19 characters, safely under the iptables limit. */
export function sandboxLogPrefix(id: string): string {
  return `proxywall:${id}:`;
}

export interface PrefixMatch {
  sandbox: string;
  /** Message text after the prefix, starting at "IN=". */
  rest: string;
}

export interface PrefixMatcher {
  /** Cheap test for a whole line: can it hold a record at all? */
  marker: string;
  match(message: string): PrefixMatch | null;
}

function isHex8(s: string, at: number): boolean {
  for (let i = at; i < at + 8; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Any proxywall sandbox: "proxywall:<8 hex>:IN=". */
export function anySandboxPrefix(): PrefixMatcher {
  const head = "proxywall:";
  return {
    marker: head,
    match(message) {
      if (!message.startsWith(head) || message.charCodeAt(18) !== 58 || !isHex8(message, 10)) return null;
      if (!message.startsWith("IN=", 19)) return null;
      return { sandbox: message.slice(10, 18), rest: message.slice(19) };
    },
  };
}

/** Exactly this prefix (or its iptables truncation). */
export function exactPrefix(prefix: string): PrefixMatcher {
  const own = OWN_PREFIX.exec(prefix);
  const sandbox = own ? own[1]! : prefix.replace(/:+$/, "") || prefix;
  const forms = prefix.length > IPTABLES_PREFIX_MAX ? [prefix, prefix.slice(0, IPTABLES_PREFIX_MAX)] : [prefix];
  return {
    marker: forms[forms.length - 1]!,
    match(message) {
      for (const form of forms) {
        if (message.startsWith(form) && message.startsWith("IN=", form.length)) {
          return { sandbox, rest: message.slice(form.length) };
        }
      }
      return null;
    },
  };
}
