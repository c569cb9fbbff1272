// The argv that starts proxywall again for its JIT options (src/sys/jit-tiers.ts): pure, no root.
import { expect, test } from "bun:test";
import { eventsFds, sameArgv } from "../src/sys/jit-tiers.ts";

test("the compiled binary gets back only the user's arguments (Bun puts its bundle path in argv[1])", () => {
  expect(sameArgv(["bun", "/$bunfs/root/proxywall", "run", "--", "curl", "-v"], "./proxywall", [], true)).toEqual(["./proxywall", "run", "--", "curl", "-v"]);
});

test("from source, bun's own flags and the script come back in front of the arguments", () => {
  expect(sameArgv(["/usr/bin/bun", "/src/main.ts", "monitor", "--pid", "7"], "bun", ["--smol"], false)).toEqual(["bun", "--smol", "/src/main.ts", "monitor", "--pid", "7"]);
});

test("the --events fd:N that must survive the re-execution: both spellings, none after --", () => {
  expect(eventsFds(["run", "--events", "fd:9", "--", "cmd", "--events", "fd:7"])).toEqual([9]);
  expect(eventsFds(["run", "--events=fd:12", "--", "x"])).toEqual([12]);
  expect(eventsFds(["monitor", "--events", "/var/log/e.jsonl"])).toEqual([]);
  expect(eventsFds(["run", "--events"])).toEqual([]);
  expect(eventsFds(["run", "--", "--events", "fd:3"])).toEqual([]);
});
