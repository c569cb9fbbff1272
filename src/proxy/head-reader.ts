// A client's request head, gathered from its chunks until the blank line that ends it (at most
// MAX_HEAD_BYTES), then parsed. The bytes after the head in the last chunk come back with it: they
// are the start of the body or of the tunnel, and go upstream once the request is admitted.
import { BadRequest, findHeadEnd, MAX_HEAD_BYTES, parseRequestHead, type ProxyRequest } from "./head.ts";

export type HeadRead =
  | { kind: "more" }
  | { kind: "head"; req: ProxyRequest; rest: Buffer }
  /** `method`: the request's method when it could be read (for the event line), else "". */
  | { kind: "bad"; method: string; error: string };

export class HeadReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Bytes gathered so far (0: the client has sent nothing). */
  get length(): number {
    return this.buf.length;
  }

  push(d: Buffer): HeadRead {
    const from = this.buf.length - 3; // the blank line may have begun in the last chunk
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    const end = findHeadEnd(this.buf, from);
    if (end < 0 ? this.buf.length > MAX_HEAD_BYTES : end > MAX_HEAD_BYTES) return { kind: "bad", method: "", error: `request head larger than ${MAX_HEAD_BYTES} bytes` };
    if (end < 0) return { kind: "more" };
    const head = this.buf;
    this.buf = Buffer.alloc(0);
    try {
      return { kind: "head", req: parseRequestHead(head.toString("latin1", 0, end)), rest: head.subarray(end) };
    } catch (e) {
      if (!(e instanceof BadRequest)) throw e;
      const m = /^(\S+) /.exec(head.toString("latin1", 0, Math.min(end, 32)));
      return { kind: "bad", method: m && /^[A-Z]+$/.test(m[1]!) ? m[1]! : "", error: e.message };
    }
  }
}
