// The ClientHello reader (src/proxy/tls-sni.ts) on real handshakes: the first bytes node's TLS
// client and openssl send to a loopback listener of the test's own.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import tls from "node:tls";
import { MAX_HELLO_BYTES, readFirstBytes } from "../src/proxy/tls-sni.ts";

let server: net.Server;
let port = 0;
const captured: ((b: Buffer) => void)[] = [];

beforeAll(async () => {
  // Collects the first 4 KiB a client sends, then closes: no TLS server answers.
  server = net.createServer((s) => {
    let got = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (readFirstBytes(got).kind !== "more" || got.length > 4096) {
        captured.shift()?.(got);
        s.destroy();
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(() => server.close());

function helloFromNode(servername: string | undefined): Promise<Buffer> {
  const got = new Promise<Buffer>((r) => captured.push(r));
  const c = tls.connect({ host: "127.0.0.1", port, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false });
  c.on("error", () => {});
  return got.finally(() => c.destroy());
}

async function helloFromOpenssl(servername: string): Promise<Buffer> {
  const got = new Promise<Buffer>((r) => captured.push(r));
  const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", servername], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  try {
    return await got;
  } finally {
    p.kill();
  }
}

describe("readFirstBytes", () => {
  test("node's ClientHello names the server it asked for, lower-cased", async () => {
    expect(readFirstBytes(await helloFromNode("Fronted.Example.TEST"))).toEqual({ kind: "client-hello", sni: "fronted.example.test" });
  });

  test("openssl's ClientHello too", async () => {
    expect(readFirstBytes(await helloFromOpenssl("api.example.test"))).toEqual({ kind: "client-hello", sni: "api.example.test" });
  });

  test("a ClientHello without SNI (an address as the target) says so", async () => {
    // node sends no SNI for an IP literal, whatever servername says.
    expect(readFirstBytes(await helloFromNode(""))).toEqual({ kind: "client-hello", sni: null });
  });

  test("every prefix of a real hello asks for more; the whole decides", async () => {
    const hello = await helloFromNode("x.example.test");
    for (const n of [0, 1, 4, 5, 40, hello.length - 1]) expect(readFirstBytes(hello.subarray(0, n))).toEqual({ kind: "more" });
    expect(readFirstBytes(hello).kind).toBe("client-hello");
  });

  test("other protocols are not TLS", () => {
    expect(readFirstBytes(Buffer.from("GET / HTTP/1.1\r\n"))).toEqual({ kind: "not-tls" });
    expect(readFirstBytes(Buffer.from("SSH-2.0-OpenSSH_9.2\r\n"))).toEqual({ kind: "not-tls" });
    expect(readFirstBytes(Buffer.from([0x16, 0x02, 0x01, 0, 5]))).toEqual({ kind: "not-tls" });
  });

  test("malformed handshakes are named, never taken for a name", async () => {
    expect(readFirstBytes(Buffer.from([0x16, 3, 1, 0x50, 0])).kind).toBe("malformed"); // record over 16 KiB
    expect(readFirstBytes(Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0]))).toEqual({ kind: "malformed", why: "the first handshake message is not a ClientHello" });
    const hello = Buffer.from(await helloFromNode("y.example.test"));
    // Claim a longer handshake body than the record holds.
    hello[6] = 0xff;
    expect(readFirstBytes(hello).kind).toBe("malformed");
    expect(MAX_HELLO_BYTES).toBe(16389);
  });
});
