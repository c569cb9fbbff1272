// The proxy's door on the sandbox's own loopback: the built-in proxy (which admits each request by
// the policy and names the process behind it), or a relay to the user's own proxy. Its modules are
// loaded while the sandbox is built, so opening the door is only listening.
import type { ClientEnds } from "../proxy/connection.ts";
import type { SandboxPlan } from "../plan/sandbox-plan.ts";
import { netnsPath } from "../sys/netns.ts";
import { SetupError } from "./apply.ts";
import type { Setup } from "./setup.ts";

/** Starts loading what the door needs; await it in openDoor. */
export function loadDoor() {
  return Promise.all([import("../proxy/http-proxy.ts"), import("../proxy/admission.ts"), import("../monitor/attribution.ts"), import("../proxy/relay.ts")]);
}

/** The proxy's door on the sandbox's loopback: the built-in proxy, or a relay to the user's own. */
export async function openDoor(s: Setup, plan: SandboxPlan, loading: ReturnType<typeof loadDoor>): Promise<void> {
  const netns = netnsPath(plan.names.netns);
  const ext = s.cfg.externalProxy;
  try {
    if (ext) {
      const [, , , { startRelay }] = await loading;
      const relay = await startRelay({ listen: plan.door, netns, to: ext });
      s.onTeardown("relay", () => relay.close());
    } else {
      const [{ startProxy }, { policyAdmission }, { Attributor }] = await loading;
      // Who opened each client connection: an exact lookup in the sandbox, made when first needed.
      let attributor: InstanceType<typeof Attributor> | null = null;
      s.onTeardown("proxy attribution", () => attributor?.close());
      const whoAsks = (c: ClientEnds) => {
        attributor ??= new Attributor(netns, () => s.cmdPid, null, false);
        const family = c.addr.includes(":") ? "ipv6" : "ipv4";
        return attributor.attribute({ proto: "tcp", family, srcAddr: c.addr, srcPort: c.port, dstAddr: c.local.addr, dstPort: c.local.port }, true);
      };
      const proxy = await startProxy({
        listen: plan.door,
        netns,
        sandbox: s.id,
        onEvent: s.emit,
        identify: whoAsks,
        admit: policyAdmission(s.cfg.policy),
        idleTimeoutMs: s.cfg.idleTimeoutS * 1000,
        maxClients: s.cfg.maxClients,
      });
      s.onTeardown("proxy", () => proxy.close());
    }
  } catch (e) {
    throw new SetupError(`starting the ${ext ? "relay to your proxy" : "built-in proxy"}: ${(e as Error).message}`);
  }
}
