// The local control socket: newline-delimited JSON requests and responses on a unix socket in the state
// directory (mode 0600). Only the local CLI talks to it; it never listens on a network port. The methods and
// their answers are in control.ts.
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";

export type ControlHandler = (method: string, params: Record<string, unknown>) => Promise<unknown>;

const MAX_REQUEST_BYTES = 64 * 1024;

export class ControlServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly path: string, private readonly handler: ControlHandler) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      // A live daemon answers; a stale socket file from a crash does not and is replaced.
      if (await probe(this.path)) throw new Error(`another daemon is already running on ${this.path}`);
      unlinkSync(this.path);
    }
    this.server = createServer((s) => this.serve(s));
    await new Promise<void>((res, rej) => {
      this.server!.once("error", rej);
      this.server!.listen(this.path, () => res());
    });
    chmodSync(this.path, 0o600);
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => undefined);
    let buf = "";
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) { s.end(JSON.stringify({ error: "request too large" }) + "\n"); return; }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.answer(s, line);
      }
    });
  }

  private async answer(s: Socket, line: string): Promise<void> {
    let parsed: unknown;
    try { parsed = JSON.parse(line); } catch { s.write(JSON.stringify({ error: "request is not JSON" }) + "\n"); return; }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      s.write(JSON.stringify({ error: "request must be a JSON object {id, method, params}" }) + "\n");
      return;
    }
    const req = parsed as { id?: unknown; method?: unknown; params?: unknown };
    const id = req.id;
    if (typeof req.method !== "string") { s.write(JSON.stringify({ id, error: "missing method" }) + "\n"); return; }
    try {
      const result = await this.handler(req.method, (req.params && typeof req.params === "object" ? req.params : {}) as Record<string, unknown>);
      if (!s.destroyed) s.write(JSON.stringify({ id, result }) + "\n");
    } catch (err) {
      if (!s.destroyed) s.write(JSON.stringify({ id, error: (err as Error).message }) + "\n");
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}

function probe(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection(path);
    c.once("connect", () => { c.destroy(); res(true); });
    c.once("error", () => res(false));
  });
}

/** One request to the daemon; rejects with a message naming the socket when nothing listens. */
export function controlRequest<T = unknown>(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = "";
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`no answer from the daemon on ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding("utf8");
    c.on("connect", () => c.write(JSON.stringify({ id: 1, method, params }) + "\n"));
    c.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      let msg: { result?: T; error?: string };
      try { msg = JSON.parse(buf.slice(0, nl)); } catch { reject(new Error("daemon sent a malformed answer")); return; }
      if (msg.error !== undefined) reject(new Error(msg.error));
      else resolve(msg.result as T);
    });
    c.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code === "ENOENT" || err.code === "ECONNREFUSED"
        ? `no daemon is running (nothing listens on ${path}); start one with "ember up"`
        : `control socket ${path}: ${err.message}`));
    });
  });
}
