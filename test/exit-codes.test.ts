// Exit codes (src/exit-codes.ts): the numbers the README documents, and the error that carries one.
import { describe, expect, test } from "bun:test";
import { EXIT, ExitError, usageError } from "../src/exit-codes.ts";

describe("exit codes", () => {
  test("the numbers in the README's table", () => {
    expect(EXIT).toEqual({ ok: 0, failure: 1, usage: 2, sandbox: 3, bypass: 4, fenceChanged: 5, eventsLost: 6 });
  });

  test("ExitError carries its message and code, and is an Error", () => {
    const e = new ExitError("the sandbox could not be built", EXIT.sandbox);
    expect(e).toBeInstanceOf(Error);
    expect({ message: e.message, code: e.code, name: e.name }).toEqual({ message: "the sandbox could not be built", code: 3, name: "Error" });
  });

  test("usageError is an ExitError with code 2", () => {
    const e = usageError("unknown option --nope");
    expect(e).toBeInstanceOf(ExitError);
    expect({ message: e.message, code: e.code }).toEqual({ message: "unknown option --nope", code: 2 });
  });
});
