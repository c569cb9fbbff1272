// The C library through bun:ffi (src/sys/libc.ts) and errno names (src/sys/errno.ts).
import { describe, expect, test } from "bun:test";
import { EBADF, errnoName } from "../src/sys/errno.ts";
import { errno, libc } from "../src/sys/libc.ts";

describe("libc and errno", () => {
  test("a failed call leaves its errno for errno()", () => {
    expect(libc().close(-1)).toBe(-1);
    expect(errno()).toBe(EBADF);
    expect(Number(libc().lseek(-1, 0, 2))).toBe(-1);
    expect(errnoName(errno())).toBe("EBADF");
  });

  test("one handle: every call gets the same functions", () => {
    expect(libc()).toBe(libc());
  });

  test("errno names, and a number for one without a name", () => {
    expect([errnoName(1), errnoName(105), errnoName(95)]).toEqual(["EPERM", "ENOBUFS", "EOPNOTSUPP"]);
    expect(errnoName(4095)).toBe("errno 4095");
    // Every number the runtime names, with the name node:net messages use (a relayed tunnel's
    // errors read as the JS relay's did: "client: read ECONNRESET").
    expect([errnoName(104), errnoName(11), errnoName(524)]).toEqual(["ECONNRESET", "EAGAIN", "ENOTSUPP"]);
  });
});
