// The request head gathered from a client's chunks (src/proxy/head-reader.ts).
import { expect, test } from "bun:test";
import { HeadReader } from "../src/proxy/head-reader.ts";
import { MAX_HEAD_BYTES } from "../src/proxy/head.ts";

const b = (s: string) => Buffer.from(s, "latin1");

test("a head split anywhere, the blank line too, is read once whole; what follows it comes back", () => {
  const text = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nHELLO";
  for (let cut = 1; cut < text.length; cut++) {
    const r = new HeadReader();
    expect(r.push(b(text.slice(0, cut)))).toEqual(cut < text.length - 5 ? { kind: "more" } : expect.objectContaining({ kind: "head" }));
    if (cut >= text.length - 5) continue;
    expect(r.length).toBe(cut);
    const got = r.push(b(text.slice(cut)));
    expect(got).toMatchObject({ kind: "head", req: { kind: "connect", method: "CONNECT", host: "example.com", port: 443 } });
    expect((got as { rest: Buffer }).rest.toString()).toBe("HELLO");
  }
});

test("a head over the limit is refused as soon as it is over, without waiting for its end", () => {
  const r = new HeadReader();
  expect(r.push(b(`GET http://example.com/ HTTP/1.1\r\nX: ${"a".repeat(MAX_HEAD_BYTES - 100)}`))).toEqual({ kind: "more" });
  expect(r.push(b("a".repeat(200)))).toEqual({ kind: "bad", method: "", error: `request head larger than ${MAX_HEAD_BYTES} bytes` });
});

test("a head that cannot be read: the method when it looks like one, for the event line", () => {
  expect(new HeadReader().push(b("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).toMatchObject({ kind: "bad", method: "GET" });
  expect(new HeadReader().push(b("\x16\x03\x01 hello\r\n\r\n"))).toMatchObject({ kind: "bad", method: "" });
});
