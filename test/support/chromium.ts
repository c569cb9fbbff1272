// Headless Chromium (Debian's `chromium`) driven over the DevTools protocol with Bun's WebSocket:
// open a local page, collect console errors, exceptions and log entries, every network request
// that is not file: or data:, and a screenshot. For tests of pages proxywall writes.
import { existsSync } from "node:fs";

export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p)) ?? null;

export interface PageCheck {
  /** Console errors, uncaught exceptions and error log entries, as text. */
  errors: string[];
  /** URLs the page asked for that are not file: or data:. */
  requests: string[];
  /** The screenshot, PNG. */
  png: Uint8Array;
  /** document.title after load. */
  title: string;
}

/** Loads `file` (an absolute path) in a fresh headless Chromium, `width` x `height` CSS pixels. */
export async function checkPage(file: string, profileDir: string, opts: { width?: number; height?: number; timeoutMs?: number } = {}): Promise<PageCheck> {
  if (!CHROMIUM) throw new Error("chromium is not installed (apt-get install chromium)");
  const width = opts.width ?? 1280;
  const height = opts.height ?? 800;
  const p = Bun.spawn(
    [
      CHROMIUM,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-extensions",
      "--hide-scrollbars",
      `--user-data-dir=${profileDir}`,
      "--remote-debugging-port=0",
      `--window-size=${width},${height}`,
      "about:blank",
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  const deadline = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  try {
    const wsUrl = await devtoolsUrl(p.stderr);
    const target = await pageTarget(wsUrl);
    return await drive(target, file, width, height);
  } finally {
    clearTimeout(deadline);
    p.kill("SIGKILL");
    await p.exited;
  }
}

/** The browser's DevTools URL, from the "DevTools listening on ws://..." line on stderr. */
async function devtoolsUrl(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const d = new TextDecoder();
  let text = "";
  for await (const chunk of stderr) {
    text += d.decode(chunk, { stream: true });
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
    if (m) return m[1]!;
  }
  throw new Error(`chromium ended before it listened: ${text.slice(-2000)}`);
}

/** The WebSocket URL of the first page target (the about:blank tab). */
async function pageTarget(browserWs: string): Promise<string> {
  const http = browserWs.replace(/^ws:\/\/([^/]+)\/.*$/, "http://$1/json/list");
  for (let i = 0; i < 50; i++) {
    const list = (await (await fetch(http)).json()) as { type: string; webSocketDebuggerUrl: string }[];
    const page = list.find((t) => t.type === "page");
    if (page) return page.webSocketDebuggerUrl;
    await Bun.sleep(100);
  }
  throw new Error("chromium has no page target");
}

async function drive(wsUrl: string, file: string, width: number, height: number): Promise<PageCheck> {
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${wsUrl}`));
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();
  const listeners: ((method: string, params: any) => void)[] = [];
  const errors: string[] = [];
  const requests: string[] = [];
  ws.onmessage = (m) => {
    const msg = JSON.parse(String(m.data));
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(`${msg.error.message}`));
      else p?.resolve(msg.result);
      return;
    }
    const { method, params } = msg;
    if (method === "Runtime.consoleAPICalled" && (params.type === "error" || params.type === "assert" || params.type === "warning")) {
      errors.push(`console.${params.type}: ${params.args.map((a: any) => a.value ?? a.description).join(" ")}`);
    } else if (method === "Runtime.exceptionThrown") {
      errors.push(`exception: ${params.exceptionDetails.exception?.description ?? params.exceptionDetails.text}`);
    } else if (method === "Log.entryAdded" && (params.entry.level === "error" || params.entry.level === "warning")) {
      errors.push(`log ${params.entry.source}: ${params.entry.text}${params.entry.url ? ` (${params.entry.url})` : ""}`);
    } else if (method === "Network.requestWillBeSent") {
      const url = String(params.request.url);
      if (!url.startsWith("file:") && !url.startsWith("data:")) requests.push(url);
    }
    for (const l of listeners) l(method, params);
  };
  const send = (method: string, params: object = {}) =>
    new Promise<any>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    for (const d of ["Page", "Runtime", "Log", "Network"]) await send(`${d}.enable`);
    await send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
    const loaded = new Promise<void>((resolve) => listeners.push((m) => m === "Page.loadEventFired" && resolve()));
    const nav = await send("Page.navigate", { url: `file://${file}` });
    if (nav.errorText) throw new Error(`navigation failed: ${nav.errorText}`);
    await loaded;
    // Anything the page does right after load (it should do nothing) has a moment to show.
    await Bun.sleep(300);
    const title = (await send("Runtime.evaluate", { expression: "document.title", returnByValue: true })).result.value as string;
    const shot = await send("Page.captureScreenshot", { format: "png" });
    return { errors, requests, png: Buffer.from(shot.data as string, "base64"), title };
  } finally {
    ws.close();
  }
}
