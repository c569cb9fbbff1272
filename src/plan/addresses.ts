// Names and addresses of one sandbox. The sandbox has no host side: its network namespace holds
// loopback and a veth pair whose both ends stay inside (one carries the default routes, the other
// is a sink), so every sandbox can use the same inside addresses and nothing outside sees them.
import { sandboxLogPrefix } from "../kernel-log/log-prefix.ts";

/** The inside addresses: what `src_addr` in a bypass line shows. Not reachable from anywhere else. */
export const INSIDE = {
  v4: "10.200.0.2",
  v4PrefixLen: 30,
  v6: "fd70:7077::2",
  v6PrefixLen: 64,
} as const;

/** Where the proxy's door is: the sandbox's own loopback, one address per family. */
export const DOOR = { v4: "127.0.0.1", v6: "::1" } as const;

export interface SandboxNames {
  id: string;
  netns: string;
  /** The veth end that carries the default routes: every outbound packet meets the fence there. */
  routeIf: string;
  /** Its peer, up and without an address: where the packets the fence lets out would go. */
  sinkIf: string;
  logPrefix: string;
}

export const ID_PATTERN = /^[0-9a-f]{8}$/;

/** Names derived from the 8-hex id. The links live only in the namespace, so theirs are fixed. */
export function sandboxNames(id: string): SandboxNames {
  return { id, netns: `pw-${id}`, routeIf: "pw0", sinkIf: "pw1", logPrefix: sandboxLogPrefix(id) };
}

export function newSandboxId(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
