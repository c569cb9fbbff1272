// The edge between argv and validated config (src/cli/argv.ts): where proxywall's own arguments
// end, which flags a command knows, and how a bad value becomes one usage line with exit code 2.
import { describe, expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import * as v from "valibot";
import { AddressPortOption, checkFlags, intOption, splitAtDoubleDash, validate } from "../src/cli/argv.ts";
import { EXIT, ExitError } from "../src/exit-codes.ts";

/** The ExitError `f` throws (as {code, message}), or "no error". */
function thrown(f: () => unknown): { code: number; message: string } | "no error" {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ExitError)) throw e;
    return { code: e.code, message: e.message };
  }
  return "no error";
}

const usage = (message: string) => ({ code: EXIT.usage, message });

describe("splitAtDoubleDash", () => {
  test("no -- at all: everything is proxywall's, rest is null (not empty)", () => {
    expect(splitAtDoubleDash(["run", "--dry-run"])).toEqual({ own: ["run", "--dry-run"], rest: null });
    expect(splitAtDoubleDash([])).toEqual({ own: [], rest: null });
  });

  test("the first -- splits; later ones, and --help after it, belong to CMD", () => {
    expect(splitAtDoubleDash(["run", "--user", "nobody", "--", "curl", "--", "--help"])).toEqual({
      own: ["run", "--user", "nobody"],
      rest: ["curl", "--", "--help"],
    });
  });

  test("-- at either end", () => {
    expect(splitAtDoubleDash(["run", "--"])).toEqual({ own: ["run"], rest: [] });
    expect(splitAtDoubleDash(["--", "true"])).toEqual({ own: [], rest: ["true"] });
  });

  test("only an exact -- splits: ---, --=x and a quoted '-- ' are arguments", () => {
    expect(splitAtDoubleDash(["run", "---", "--=x", "-- "])).toEqual({ own: ["run", "---", "--=x", "-- "], rest: null });
  });

  test("returns copies: changing them leaves argv alone", () => {
    const argv = ["run", "--", "x"];
    const noDash = ["a"];
    const s = splitAtDoubleDash(argv);
    s.own.push("changed");
    s.rest!.push("changed");
    const t = splitAtDoubleDash(noDash);
    t.own.push("changed");
    expect({ argv, noDash }).toEqual({ argv: ["run", "--", "x"], noDash: ["a"] });
  });
});

describe("checkFlags", () => {
  // The shapes citty commands use here: kebab and camelCase names, a boolean, aliases (one and a
  // list), a positional.
  const args = {
    "state-dir": { type: "string", description: "", default: "/run/proxywall" },
    summaryInterval: { type: "string", description: "" },
    "dry-run": { type: "boolean", description: "" },
    json: { type: "boolean", description: "", alias: "j" },
    user: { type: "string", description: "", alias: ["u", "as"] },
    file: { type: "positional", description: "", required: false },
  } satisfies ArgsDef;
  const check = (...raw: string[]) => thrown(() => checkFlags(args, raw));

  test("known flags, with values separate or after =, pass", () => {
    for (const raw of [
      [],
      ["--state-dir", "/tmp/x"],
      ["--state-dir=/tmp/x"],
      ["--summary-interval", "5"],
      ["--summaryInterval", "5"],
      ["--dry-run"],
      ["--no-dry-run"],
      ["--json", "-j", "--no-json", "--no-j"],
      ["-u", "nobody", "--as", "0:0", "--user=root", "-u=1"],
      ["--help"],
      ["-h"],
      ["--help", "--dry-run", "-h"],
    ]) {
      expect({ raw, result: check(...raw) }).toEqual({ raw, result: "no error" });
    }
  });

  test("positionals and a lone - (standard input) are not flags", () => {
    expect(check("kmsg.txt", "-", "more")).toBe("no error");
  });

  test("a valued flag takes the next word whatever it looks like", () => {
    expect(check("--user", "-5")).toBe("no error");
    expect(check("--state-dir", "--no-such-flag")).toBe("no error");
    // ... but only one word: the one after it is checked again
    expect(check("--state-dir", "/x", "--nope")).toEqual(usage("unknown option --nope"));
  });

  test("unknown flags name themselves, without their =value", () => {
    expect(check("--nope")).toEqual(usage("unknown option --nope"));
    expect(check("--nope=secret")).toEqual(usage("unknown option --nope"));
    expect(check("-x")).toEqual(usage("unknown option -x"));
    expect(check("--dry-run", "kmsg.txt", "--verbose")).toEqual(usage("unknown option --verbose"));
    // the positional's name is not a flag, nor is "no-" of a valued flag or of help
    expect(check("--file", "x")).toEqual(usage("unknown option --file"));
    expect(check("--no-state-dir")).toEqual(usage("unknown option --no-state-dir"));
    expect(check("--no-help")).toEqual(usage("unknown option --no-help"));
    // a bare -- reaching checkFlags (cli.ts splits it off first) is not taken for a flag either
    expect(check("--")).toEqual(usage("unknown option --"));
  });

  test("a valued flag at the end needs its value", () => {
    expect(check("--state-dir")).toEqual(usage("option --state-dir needs a value"));
    expect(check("--dry-run", "-u")).toEqual(usage("option -u needs a value"));
    expect(check("--summary-interval")).toEqual(usage("option --summary-interval needs a value"));
  });

  test("a boolean flag never takes the next word", () => {
    expect(check("--dry-run", "--nope")).toEqual(usage("unknown option --nope"));
  });

  test("a command with no flags of its own knows only help", () => {
    expect(thrown(() => checkFlags({}, ["--help", "-h"]))).toBe("no error");
    expect(thrown(() => checkFlags({}, ["--json"]))).toEqual(usage("unknown option --json"));
  });
});

describe("intOption", () => {
  const port = intOption(1, 65535);
  const parse = (text: unknown) => {
    const r = v.safeParse(port, text);
    return r.success ? r.output : r.issues[0].message;
  };

  test("whole numbers in range, leading zeros allowed", () => {
    expect([parse("1"), parse("3128"), parse("65535"), parse("0080")]).toEqual([1, 3128, 65535, 80]);
  });

  test("bounds are inclusive and named in the message", () => {
    expect(parse("0")).toBe("must be at least 1");
    expect(parse("65536")).toBe("must be at most 65535");
    expect(v.safeParse(intOption(0, 0), "0").output).toBe(0);
    expect(parse("9999999999")).toBe("must be at most 65535");
  });

  test("anything but 1 to 10 decimal digits is not a whole number", () => {
    for (const bad of ["", " 1", "1 ", "+1", "-1", "1.0", "1e3", "0x10", "１２", "12345678901"]) {
      expect({ bad, got: parse(bad) }).toEqual({ bad, got: "must be a whole number" });
    }
  });

  test("only text is accepted (citty gives strings)", () => {
    expect(parse(80)).toBe("Invalid type: Expected string but received 80");
    expect(parse(undefined)).toBe("Invalid type: Expected string but received undefined");
  });
});

describe("AddressPortOption", () => {
  const parse = (text: string) => {
    const r = v.safeParse(AddressPortOption, text);
    return r.success ? r.output : r.issues[0].message;
  };
  const SHAPE = "must be ADDRESS:PORT ([ADDRESS]:PORT for IPv6)";

  test("IPv4 and bracketed IPv6, the address made canonical", () => {
    expect(parse("10.200.0.1:3128")).toEqual({ addr: "10.200.0.1", port: 3128 });
    expect(parse("[::1]:8080")).toEqual({ addr: "::1", port: 8080 });
    expect(parse("[FD70:7077:0AC8:0004:0000:0000:0000:0001]:1")).toEqual({ addr: "fd70:7077:ac8:4::1", port: 1 });
    expect(parse("[::ffff:10.0.0.1]:65535")).toEqual({ addr: "::ffff:10.0.0.1", port: 65535 });
  });

  test("the shape is checked first", () => {
    for (const bad of ["10.0.0.1", "10.0.0.1:", ":80", "::1:80", "[::1]", "host:80", "10.0.0.1:123456", "[::1]:80 ", "[zz::1]:80"]) {
      expect({ bad, got: parse(bad) }).toEqual({ bad, got: SHAPE });
    }
  });

  test("then the address, then the port", () => {
    expect(parse("256.0.0.1:80")).toBe("256.0.0.1 is not an IP address");
    expect(parse("1.2.3:80")).toBe("1.2.3 is not an IP address");
    expect(parse("[1::2::3]:80")).toBe("1::2::3 is not an IP address");
    expect(parse("10.0.0.1:0")).toBe("port must be from 1 to 65535");
    expect(parse("[::1]:65536")).toBe("port must be from 1 to 65535");
  });
});

describe("validate", () => {
  const Options = v.object({
    proxyPort: intOption(1, 65535),
    stateDir: v.pipe(v.string(), v.regex(/^\//, "must be an absolute path")),
    backend: v.optional(v.picklist(["nft", "iptables"], "must be nft or iptables")),
    nested: v.optional(v.object({ innerValue: v.literal(1, "must be 1") })),
  });
  const ok = { proxyPort: "3128", stateDir: "/run/proxywall" };

  test("returns the transformed output", () => {
    expect(validate(Options, ok)).toEqual({ proxyPort: 3128, stateDir: "/run/proxywall" });
    expect(validate(Options, { ...ok, backend: "nft" })).toEqual({ proxyPort: 3128, stateDir: "/run/proxywall", backend: "nft" });
  });

  test("the first problem becomes one usage error naming the option in kebab case", () => {
    expect(thrown(() => validate(Options, { ...ok, proxyPort: "0" }))).toEqual(usage("--proxy-port: must be at least 1"));
    expect(thrown(() => validate(Options, { ...ok, stateDir: "run" }))).toEqual(usage("--state-dir: must be an absolute path"));
    expect(thrown(() => validate(Options, { ...ok, backend: "ebtables" }))).toEqual(usage("--backend: must be nft or iptables"));
    // two problems: only the first (in key order) is told
    expect(thrown(() => validate(Options, { proxyPort: "x", stateDir: "y" }))).toEqual(usage("--proxy-port: must be a whole number"));
  });

  test("a nested key is joined with dots", () => {
    expect(thrown(() => validate(Options, { ...ok, nested: { innerValue: 2 } }))).toEqual(usage("--nested.inner-value: must be 1"));
  });

  test("a problem with the input as a whole has no option name", () => {
    expect(thrown(() => validate(v.string("must be text"), 1))).toEqual(usage("must be text"));
  });
});
