// proxywall entry point. Kept tiny: `--version` answers before anything else is loaded, and each
// subcommand is imported only when it runs.
import { VERSION } from "./version.ts";
import { INIT_ENV } from "./sandbox/init-protocol.ts";

async function main(argv: string[]): Promise<number> {
  // CMD's init (src/sandbox/init.ts), started by proxywall itself inside the sandbox: recognised
  // by a variable, not an argument, so that no argument a user gives can select it.
  if (process.env[INIT_ENV] !== undefined) return (await import("./sandbox/init.ts")).runInit(argv);
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    console.log(VERSION);
    return 0;
  }
  // The long-running watchers first restart themselves with the JIT options they want (jit-tiers.ts).
  if (argv[0] === "run" || argv[0] === "monitor") (await import("./sys/jit-tiers.ts")).withoutOptimizingJit();
  const { cli } = await import("./cli/cli.ts");
  return cli(argv);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`proxywall: error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
