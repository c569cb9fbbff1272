// The argv that starts proxywall again for its JIT options (src/sys/jit-tiers.ts): pure, no root.
import { expect, test } from "bun:test";
import { sameArgv } from "../src/sys/jit-tiers.ts";

test("the compiled binary gets back only the user's arguments (Bun puts its bundle path in argv[1])", () => {
  expect(sameArgv(["bun", "/$bunfs/root/proxywall", "run", "--", "curl", "-v"], "./proxywall", [], true)).toEqual(["./proxywall", "run", "--", "curl", "-v"]);
});

test("from source, bun's own flags and the script come back in front of the arguments", () => {
  expect(sameArgv(["/usr/bin/bun", "/src/main.ts", "monitor", "--pid", "7"], "bun", ["--smol"], false)).toEqual(["bun", "--smol", "/src/main.ts", "monitor", "--pid", "7"]);
});
