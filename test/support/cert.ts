// A throwaway TLS certificate for local HTTPS origins (CN=localhost, one day), made with openssl.
import { join } from "node:path";

/** Writes cert.pem and key.pem into `dir` and returns their paths; throws with openssl's words if it fails. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`openssl req failed (exit ${r.exitCode}): ${r.stderr.toString().trim()}`);
  return { cert, key };
}
