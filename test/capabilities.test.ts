// What run and monitor say when they lack the capabilities a sandbox needs: uid 0 without them is
// told which one is missing, not "needs root".
import { describe, expect, test } from "bun:test";
import { CAP_NET_ADMIN, CAP_SYS_ADMIN, missingSandboxCaps } from "../src/sys/capabilities.ts";
import { describePrivileged, proxywall, TEST_ARGS } from "./support/privileged.ts";

const bit = (cap: number) => 1n << BigInt(cap);
const ALL = bit(CAP_NET_ADMIN) | bit(CAP_SYS_ADMIN) | bit(0) | bit(7);

describe("missingSandboxCaps", () => {
  test("nothing to say with both capabilities, whoever runs it", () => {
    expect(missingSandboxCaps(0, ALL)).toBeNull();
    expect(missingSandboxCaps(1000, bit(CAP_NET_ADMIN) | bit(CAP_SYS_ADMIN))).toBeNull();
  });

  test("uid 0 without CAP_NET_ADMIN is told exactly that, and how a container gets it", () => {
    const m = missingSandboxCaps(0, ALL & ~bit(CAP_NET_ADMIN))!;
    expect(m).toStartWith("runs as uid 0 but without CAP_NET_ADMIN (links and firewall rules):");
    expect(m).not.toContain("CAP_SYS_ADMIN");
    expect(m).not.toContain("needs root");
    expect(m).toContain("--cap-add NET_ADMIN");
  });

  test("uid 0 without CAP_SYS_ADMIN, or without both", () => {
    expect(missingSandboxCaps(0, ALL & ~bit(CAP_SYS_ADMIN))).toMatch(/^runs as uid 0 but without CAP_SYS_ADMIN \(making and entering network namespaces\):.*dropped it .*--cap-add SYS_ADMIN\)$/);
    expect(missingSandboxCaps(0, 0n)).toMatch(/without CAP_NET_ADMIN .* and CAP_SYS_ADMIN .*dropped them .*--cap-add NET_ADMIN --cap-add SYS_ADMIN\)$/);
  });

  test("another uid needs root or both capabilities, and is told which it lacks", () => {
    expect(missingSandboxCaps(1000, 0n)).toBe(
      "needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN; uid 1000 lacks CAP_NET_ADMIN (links and firewall rules) and CAP_SYS_ADMIN (making and entering network namespaces)",
    );
    expect(missingSandboxCaps(1000, bit(CAP_NET_ADMIN))).toEndWith("uid 1000 lacks CAP_SYS_ADMIN (making and entering network namespaces)");
  });
});

describePrivileged("run and monitor as uid 0 with capabilities dropped (setpriv)", () => {
  const setpriv = (drop: string) => ["setpriv", "--inh-caps=-all", `--bounding-set=${drop}`];

  test("run without CAP_NET_ADMIN: exit 3, names CAP_NET_ADMIN only, CMD never starts", async () => {
    const r = await proxywall(["run", ...TEST_ARGS, "--", "sh", "-c", "echo CMD-RAN"], { prefix: setpriv("-net_admin") });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("proxywall: cannot build the sandbox: proxywall runs as uid 0 but without CAP_NET_ADMIN (links and firewall rules): the container or the command that started it dropped it (e.g. docker run --cap-add NET_ADMIN)\n");
  });

  test("run without CAP_SYS_ADMIN names CAP_SYS_ADMIN only", async () => {
    const r = await proxywall(["run", ...TEST_ARGS, "--", "true"], { prefix: setpriv("-sys_admin") });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("runs as uid 0 but without CAP_SYS_ADMIN (making and entering network namespaces)");
    expect(r.stderr).not.toContain("CAP_NET_ADMIN");
  });

  test("monitor without both names both", async () => {
    const sleeper = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    try {
      const r = await proxywall(["monitor", "--pid", String(sleeper.pid)], { prefix: setpriv("-net_admin,-sys_admin") });
      expect(r.code).toBe(3);
      expect(r.stderr).toBe(
        "proxywall: monitor runs as uid 0 but without CAP_NET_ADMIN (links and firewall rules) and CAP_SYS_ADMIN (making and entering network namespaces): the container or the command that started it dropped them (e.g. docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN)\n",
      );
    } finally {
      sleeper.kill("SIGKILL");
    }
  });
});
