// The command tree and the one place that turns errors into exit codes.
import { isatty } from "node:tty";
import type { CommandDef } from "citty";
import { VERSION } from "../version.ts";
import { checkFlags, splitAtDoubleDash, type CliData } from "./argv.ts";
import { EXIT, ExitError } from "../exit-codes.ts";

export const subCommands = {
  parse: () => import("./parse.ts").then((m) => m.default),
  rules: () => import("./rules.ts").then((m) => m.default),
  schema: () => import("./schema.ts").then((m) => m.default),
  run: () => import("./run.ts").then((m) => m.default),
  ls: () => import("./ls.ts").then((m) => m.default),
  gc: () => import("./gc.ts").then((m) => m.default),
  doctor: () => import("./doctor.ts").then((m) => m.default),
  monitor: () => import("./monitor.ts").then((m) => m.default),
  policy: () => import("./policy.ts").then((m) => m.default),
  report: () => import("./report.ts").then((m) => m.default),
} satisfies Record<string, () => Promise<CommandDef<any>>>;

/** The subcommands that take a command to run after "--", and how their usage line ends. */
const TAKES_COMMAND = new Map<string, string>([["run", "-- CMD [ARGS...]"]]);

/**
 * citty's usage text, with the command after "--" in the usage line: citty knows only options and
 * positionals, and a positional CMD would let it take `run -- CMD --help` as a help request.
 */
async function usage(citty: typeof import("citty"), cmd: CommandDef, parent: CommandDef | undefined, name: string | undefined): Promise<string> {
  const text = await citty.renderUsage(cmd, parent);
  const tail = name === undefined ? undefined : TAKES_COMMAND.get(name);
  return tail === undefined ? text : text.replace(`proxywall ${name} [OPTIONS] `, `proxywall ${name} [OPTIONS] ${tail}`);
}

export async function cli(argv: string[]): Promise<number> {
  // citty colours help text without asking whether anyone sees colours; its choice is made at import.
  if (!isatty(1) || !isatty(2)) process.env.NO_COLOR ??= "1";
  const citty = await import("citty");
  const root = citty.defineCommand({
    meta: { name: "proxywall", version: VERSION, description: "Run a program whose only way out is an HTTP proxy, and report every connection that tries to go around it" },
    subCommands,
  });
  const { own, rest } = splitAtDoubleDash(argv);
  try {
    const name = own.find((a) => !a.startsWith("-"));
    const sub = name === undefined ? undefined : subCommands[name as keyof typeof subCommands];
    if (own.includes("--help") || own.includes("-h") || own.length === 0) {
      if (name !== undefined && !sub) throw new ExitError(`unknown command ${name}`, EXIT.usage);
      const cmd = sub ? await sub() : root;
      console.log(`${await usage(citty, cmd as CommandDef, sub ? root : undefined, sub ? name : undefined)}\n`);
      return own.length === 0 ? EXIT.usage : EXIT.ok;
    }
    if (!sub) throw new ExitError(name === undefined ? `no command given (try proxywall --help)` : `unknown command ${name} (try proxywall --help)`, EXIT.usage);
    const cmd = (await sub()) as CommandDef;
    const subArgs = own.slice(own.indexOf(name!) + 1);
    if (own.indexOf(name!) > 0) throw new ExitError(`unknown option ${own[0]}`, EXIT.usage);
    checkFlags((await cmd.args) as never, subArgs);
    if (rest !== null && !TAKES_COMMAND.has(name!)) {
      throw new ExitError(`proxywall ${name} takes no command after --`, EXIT.usage);
    }
    let code: number = EXIT.ok;
    await citty.runCommand(cmd, { rawArgs: subArgs, data: { passthrough: rest } satisfies CliData }).then((r) => {
      if (typeof r.result === "number") code = r.result;
    });
    return code;
  } catch (e) {
    if (e instanceof ExitError) {
      console.error(`proxywall: ${e.message}`);
      return e.code;
    }
    if (e instanceof Error && e.name === "CLIError") {
      console.error(`proxywall: ${e.message.replace(/\u001b\[\d+m/g, "")}`);
      return EXIT.usage;
    }
    throw e;
  }
}
