// --user UID[:GID] or NAME[:GROUP] (src/sys/users.ts), against this machine's real /etc/passwd and
// /etc/group: root, nobody and nogroup are on every Debian-like system the tests run on.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolveUser } from "../src/sys/users.ts";

const SHAPE = "must be UID[:GID] or NAME[:GROUP]";

/** A /etc/passwd user whose primary group is not its own uid (Debian: sync, 4:65534), read here as the oracle. */
function userWithOtherGroup(): { name: string; uid: number; gid: number } | undefined {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name && /^\d+$/.test(uid ?? "") && /^\d+$/.test(gid ?? "") && uid !== gid) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

describe("resolveUser", () => {
  test("names from /etc/passwd, with their primary group", () => {
    expect(resolveUser("root")).toEqual({ uid: 0, gid: 0 });
    expect(resolveUser("nobody")).toEqual({ uid: 65534, gid: 65534 });
  });

  test("a number known to /etc/passwd gets that user's primary group", () => {
    expect(resolveUser("0")).toEqual({ uid: 0, gid: 0 });
    expect(resolveUser("65534")).toEqual({ uid: 65534, gid: 65534 });
    const other = userWithOtherGroup();
    expect(other).toBeDefined();
    expect(resolveUser(other!.name)).toEqual({ uid: other!.uid, gid: other!.gid });
    expect(resolveUser(String(other!.uid))).toEqual({ uid: other!.uid, gid: other!.gid });
    // with leading zeros it is still the same number
    expect(resolveUser(`000${other!.uid}`)).toEqual({ uid: other!.uid, gid: other!.gid });
  });

  test("a number nobody has: the group is the same number", () => {
    expect(resolveUser("54321")).toEqual({ uid: 54321, gid: 54321 });
    expect(resolveUser("4294967294")).toEqual({ uid: 4294967294, gid: 4294967294 });
  });

  test("UID:GID and NAME:GROUP, mixed as well; the group given wins over the primary one", () => {
    expect(resolveUser("1000:1000")).toEqual({ uid: 1000, gid: 1000 });
    expect(resolveUser("0:65534")).toEqual({ uid: 0, gid: 65534 });
    expect(resolveUser("root:nogroup")).toEqual({ uid: 0, gid: 65534 });
    expect(resolveUser("nobody:root")).toEqual({ uid: 65534, gid: 0 });
    expect(resolveUser("nobody:0")).toEqual({ uid: 65534, gid: 0 });
    expect(resolveUser("54321:nogroup")).toEqual({ uid: 54321, gid: 65534 });
  });

  test("(uid_t)-1 is not an id: 4294967295 and beyond are out of range", () => {
    expect(resolveUser("4294967295")).toBe("user id 4294967295 is out of range");
    expect(resolveUser("99999999999999999999")).toBe("user id 99999999999999999999 is out of range");
    expect(resolveUser("0:4294967295")).toBe("group id 4294967295 is out of range");
  });

  test("unknown names say which table lacks them", () => {
    expect(resolveUser("no-such-user-pw")).toBe("no such user: no-such-user-pw");
    expect(resolveUser("root:no-such-group-pw")).toBe("no such group: no-such-group-pw");
    // names are exact: no case folding, no trimming, not numbers with signs or exponents
    expect(resolveUser("Root")).toBe("no such user: Root");
    expect(resolveUser(" root")).toBe("no such user:  root");
    expect(resolveUser("-1")).toBe("no such user: -1");
    expect(resolveUser("1e3")).toBe("no such user: 1e3");
    // a group name is looked up in /etc/group, not /etc/passwd (nobody is a user, nogroup a group)
    // (Debian has no group nobody and no user nogroup; elsewhere these two lines check nothing)
    if (!groupHas("nobody")) expect(resolveUser("0:nobody")).toBe("no such group: nobody");
    if (!passwdHas("nogroup")) expect(resolveUser("nogroup")).toBe("no such user: nogroup");
  });

  test("text of the wrong shape", () => {
    for (const bad of ["", ":", ":0", "0:0:0", "root:root:root", "x".repeat(257)]) {
      expect({ bad, got: resolveUser(bad) }).toEqual({ bad, got: SHAPE });
    }
    // 256 characters is not too long: the name is looked up
    expect(resolveUser("x".repeat(256))).toBe(`no such user: ${"x".repeat(256)}`);
  });

  test("an empty group after the colon is an unknown group", () => {
    expect(resolveUser("0:")).toBe("no such group: ");
  });
});

function passwdHas(name: string): boolean {
  return readFileSync("/etc/passwd", "utf8").split("\n").some((l) => l.split(":")[0] === name);
}
function groupHas(name: string): boolean {
  return readFileSync("/etc/group", "utf8").split("\n").some((l) => l.split(":")[0] === name);
}
