// Start-up time of `proxywall --version`: the compiled binary against `bun src/main.ts`.
//
//   node_modules/.bin/bun bench/startup.ts [runs]     (default 20 runs after 3 warm-ups each)
//
// The compiled binary is dist/'s when it is newer than src/, else one built for this run
// (bench/compiled.ts). Prints whether the compiled median is within the 10 ms target; it does not
// fail on it (the machines are shared and noisy). Makes no sandbox: needs neither root nor Linux
// namespaces, only a binary for this machine.
import { compiledProxywall } from "./compiled.ts";
import { fmtMs, FROM_SOURCE, quantile, table } from "./support.ts";

const BUDGET_MS = 10;
const WARMUPS = 3;
const RUNS = Number(process.argv[2] ?? 20);

if (process.platform !== "linux" || !Number.isInteger(RUNS) || RUNS < 1 || RUNS > 1000) {
  console.error(`startup: needs Linux (this is ${process.platform}) and a run count from 1 to 1000`);
  process.exit(2);
}

function once(cmd: readonly string[]): number {
  const t0 = performance.now();
  const p = Bun.spawnSync([...cmd], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
  return ms;
}

const compiled = compiledProxywall(true);
try {
  const commands = [
    { name: "compiled", cmd: [...compiled.pw!.argv, "--version"] },
    { name: FROM_SOURCE.name, cmd: [...FROM_SOURCE.argv, "--version"] },
  ];
  const times = commands.map(() => [] as number[]);
  for (let i = 0; i < WARMUPS; i++) for (const c of commands) once(c.cmd);
  // Side by side, so a noisy moment hits both equally.
  for (let i = 0; i < RUNS; i++) commands.forEach((c, k) => times[k]!.push(once(c.cmd)));

  console.log(`compiled binary: ${compiled.note}`);
  const rows = [["", "median ms", "p90 ms", "runs"], ...commands.map((c, k) => [c.name, fmtMs(quantile(times[k]!, 0.5)), fmtMs(quantile(times[k]!, 0.9)), String(RUNS)])];
  console.log(table(rows));
  const median = quantile(times[0]!, 0.5);
  console.log(median > BUDGET_MS ? `compiled median ${fmtMs(median)} ms is over the ${BUDGET_MS} ms target` : `compiled median is within the ${BUDGET_MS} ms target`);
} finally {
  compiled.cleanup();
}
