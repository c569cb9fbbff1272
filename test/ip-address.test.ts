// Address text: IPv4 validation, IPv6 parsing (every textual form) and RFC 5952 output.
import { describe, expect, test } from "bun:test";
import { canonicalIPv6, formatIPv6, intToIPv4, ipv4ToInt, ipv6Groups, isIPv4, isIPv6 } from "../src/net/ip-address.ts";

describe("formatIPv6 (RFC 5952)", () => {
  const cases: [number[], string][] = [
    // 4.2.1: shorten as much as possible; 4.1: no leading zeros
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], "2001:db8::1"],
    [[0xfd00, 0x210, 0, 0, 0, 0, 0, 1], "fd00:210::1"],
    [[0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888], "2001:4860:4860::8888"],
    // 4.2.2: "::" never stands for a single 16-bit zero group
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"],
    [[1, 0, 2, 0, 3, 0, 4, 0], "1:0:2:0:3:0:4:0"],
    // 4.2.3: the longest run is compressed; on a tie the first one
    [[0x2001, 0, 0, 1, 0, 0, 0, 1], "2001:0:0:1::1"],
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], "2001:db8::1:0:0:1"],
    [[1, 0, 0, 2, 3, 0, 0, 4], "1::2:3:0:0:4"],
    // runs at either end, and all zeros
    [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
    [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
    [[1, 0, 0, 0, 0, 0, 0, 0], "1::"],
    [[0, 0, 1, 0, 0, 0, 0, 0], "0:0:1::"],
    [[0, 1, 2, 3, 4, 5, 6, 0], "0:1:2:3:4:5:6:0"],
    // 4.3: lower case
    [[0xabcd, 0xef01, 0xffff, 0xa, 0xb, 0xc, 0xd, 0xe], "abcd:ef01:ffff:a:b:c:d:e"],
    // 5: IPv4-mapped addresses keep the dotted quad
    [[0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304], "::ffff:1.2.3.4"],
    [[0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6407], "::ffff:198.51.100.7"],
    [[0, 0, 0, 0, 0, 0xffff, 0, 0], "::ffff:0.0.0.0"],
    // ... but only the ::ffff:0:0/96 prefix: other addresses ending in such groups stay hex
    [[0, 0, 0, 0, 0, 0, 0x0102, 0x0304], "::102:304"],
    [[0, 0, 0, 0, 1, 0xffff, 0x0102, 0x0304], "::1:ffff:102:304"],
  ];
  for (const [groups, text] of cases) {
    test(`${groups.map((g) => g.toString(16)).join(":")} -> ${text}`, () => {
      expect(formatIPv6(groups)).toBe(text);
    });
  }
});

describe("canonicalIPv6", () => {
  test("the uncompressed form netfilter LOG prints", () => {
    expect(canonicalIPv6("fd00:0210:0000:0000:0000:0000:0000:0001")).toBe("fd00:210::1");
    expect(canonicalIPv6("fd00:0210:0000:0000:0000:0000:0000:0002")).toBe("fd00:210::2");
    expect(canonicalIPv6("2001:4860:4860:0000:0000:0000:0000:8888")).toBe("2001:4860:4860::8888");
    expect(canonicalIPv6("0000:0000:0000:0000:0000:0000:0000:0000")).toBe("::");
    expect(canonicalIPv6("0000:0000:0000:0000:0000:ffff:c633:6407")).toBe("::ffff:198.51.100.7");
    expect(canonicalIPv6("2001:0db8:0000:0001:0001:0001:0001:0001")).toBe("2001:db8:0:1:1:1:1:1");
  });

  test("upper case and leading zeros come out lower case and short", () => {
    expect(canonicalIPv6("2001:0DB8:0000:0000:0000:0000:0000:00AB")).toBe("2001:db8::ab");
    expect(canonicalIPv6("FD00:210::1")).toBe("fd00:210::1");
    expect(canonicalIPv6("2001:db8:0:0:0:0:2:1")).toBe("2001:db8::2:1");
    expect(canonicalIPv6("0001:0002:0003:0004:0005:0006:0007:0008")).toBe("1:2:3:4:5:6:7:8");
  });

  test("compressed input is re-compressed at the right place", () => {
    expect(canonicalIPv6("2001:db8::1")).toBe("2001:db8::1");
    expect(canonicalIPv6("::")).toBe("::");
    expect(canonicalIPv6("::1")).toBe("::1");
    expect(canonicalIPv6("1::")).toBe("1::");
    // "::" for one group is valid input, but RFC 5952 output never uses it
    expect(canonicalIPv6("2001:db8::1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1");
    expect(canonicalIPv6("1:2:3:4:5:6:7::")).toBe("1:2:3:4:5:6:7:0");
    // a shorter run compressed in the input moves to the longer one
    expect(canonicalIPv6("2001:0:0:1::1")).toBe("2001:0:0:1::1");
    expect(canonicalIPv6("2001::1:0:0:0:1")).toBe("2001:0:0:1::1");
  });

  test("a dotted IPv4 tail", () => {
    expect(canonicalIPv6("::ffff:1.2.3.4")).toBe("::ffff:1.2.3.4");
    expect(canonicalIPv6("::FFFF:10.210.0.2")).toBe("::ffff:10.210.0.2");
    expect(canonicalIPv6("0:0:0:0:0:ffff:1.2.3.4")).toBe("::ffff:1.2.3.4");
    expect(canonicalIPv6("64:ff9b::198.51.100.7")).toBe("64:ff9b::c633:6407");
    expect(canonicalIPv6("::1.2.3.4")).toBe("::102:304");
  });

  test("invalid text gives null", () => {
    for (const bad of [
      "",
      ":",
      ":::",
      "1",
      "1.2.3.4",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "::1:2:3:4:5:6:7:8",
      "1::2::3",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:",
      ":::1",
      "12345::1",
      "g::1",
      "fd00:0210:0000:0000:0000:0000:0000:000g",
      "fd00:0210:0000:0000:0000:0000:0000-0001",
      "fd00:0210:0000:0000:0000:0000:0000:00001",
      "fe80::1%eth0",
      " ::1",
      "::1 ",
      "::ffff:1.2.3",
      "::ffff:256.1.1.1",
      "::ffff:01.2.3.4",
      "1:2:3:4:5:6:7:1.2.3.4",
      "1.2.3.4::",
      "x".repeat(46),
    ]) {
      expect({ bad, out: canonicalIPv6(bad) }).toEqual({ bad, out: null });
      expect(isIPv6(bad)).toBe(false);
    }
  });

  test("parse then format is stable for every canonical output", () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 2000; i++) {
      const groups = Array.from({ length: 8 }, () => (next() % 3 === 0 ? next() & 0xffff : 0));
      const text = formatIPv6(groups);
      expect(ipv6Groups(text)).toEqual(groups);
      expect(canonicalIPv6(text)).toBe(text);
      // and from the full, zero-padded form the kernel prints
      const full = groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
      expect(canonicalIPv6(full)).toBe(text);
    }
  });
});

describe("ipv6Groups", () => {
  test("eight groups from any form", () => {
    expect(ipv6Groups("fd00:0210:0000:0000:0000:0000:0000:0001")).toEqual([0xfd00, 0x210, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups("fd00:210::1")).toEqual([0xfd00, 0x210, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups("::ffff:198.51.100.7")).toEqual([0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6407]);
    expect(ipv6Groups("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe("IPv4", () => {
  test("valid dotted quads", () => {
    for (const ok of ["0.0.0.0", "10.210.0.2", "198.51.100.7", "255.255.255.255", "1.2.3.4", "100.64.0.1", "249.250.199.99"]) {
      expect({ ok, valid: isIPv4(ok) }).toEqual({ ok, valid: true });
    }
  });

  test("invalid ones", () => {
    for (const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "1.2.3.256",
      "300.1.1.1",
      "01.2.3.4",
      "1.2.3.04",
      "00.0.0.0",
      "1..2.3",
      "1.2.3.",
      ".1.2.3",
      "a.b.c.d",
      "1.2.3.4 ",
      " 1.2.3.4",
      "1.2.3.-4",
      "+1.2.3.4",
      "1.2.3.4/24",
      "::1",
      "١.٢.٣.٤",
    ]) {
      expect({ bad, valid: isIPv4(bad) }).toEqual({ bad, valid: false });
    }
  });

  test("to and from 32-bit integers", () => {
    expect(ipv4ToInt("198.51.100.7")).toBe(0xc6336407);
    expect(ipv4ToInt("255.255.255.255")).toBe(0xffffffff);
    expect(ipv4ToInt("0.0.0.0")).toBe(0);
    expect(intToIPv4(0xc6336407)).toBe("198.51.100.7");
    expect(intToIPv4(0xffffffff)).toBe("255.255.255.255");
    for (const a of ["10.210.0.2", "1.2.3.4", "128.0.0.1"]) expect(intToIPv4(ipv4ToInt(a))).toBe(a);
  });
});

describe("edges of the IPv6 text forms", () => {
  test("a dotted tail after six groups, without ::", () => {
    expect(ipv6Groups("1:2:3:4:5:6:1.2.3.4")).toEqual([1, 2, 3, 4, 5, 6, 0x0102, 0x0304]);
    expect(canonicalIPv6("1:2:3:4:5:6:1.2.3.4")).toBe("1:2:3:4:5:6:102:304");
    expect(canonicalIPv6("1::5:6:1.2.3.4")).toBe("1::5:6:102:304");
    expect(canonicalIPv6("1:2:3:4:5:1.2.3.4")).toBeNull(); // seven groups
  });

  test("39 characters that are not the eight-groups-of-four form are parsed the general way", () => {
    expect(canonicalIPv6("1111:2222:3333:4444:5555:6666:11.2.3.44")).toBe("1111:2222:3333:4444:5555:6666:b02:32c");
    // eight groups and a "::" that would stand for none
    expect(canonicalIPv6("1111:2222:3333:4444:5555::7777:888:9999")).toBeNull();
    expect(canonicalIPv6("1111:2222:3333:4444:5555:6666:7777:888")).toBe("1111:2222:3333:4444:5555:6666:7777:888");
  });

  test("45 characters is the longest address text", () => {
    const longest = "0000:0000:0000:0000:0000:ffff:255.255.255.255";
    expect(longest).toHaveLength(45);
    expect(canonicalIPv6(longest)).toBe("::ffff:255.255.255.255");
    expect(isIPv6(longest)).toBe(true);
    expect(isIPv6(`0${longest}`)).toBe(false);
  });

  test("isIPv6 for each valid form", () => {
    for (const ok of ["::", "::1", "1::", "fd70:7077:ac8:4::1", "FD70::1", "::ffff:1.2.3.4", "0000:0000:0000:0000:0000:0000:0000:0001"]) {
      expect({ ok, valid: isIPv6(ok) }).toEqual({ ok, valid: true });
    }
  });
});
