// The local control socket: newline-delimited JSON requests and responses on a unix socket in the state
// directory (mode 0600). Only the local CLI talks to it; it never listens on a network port. The methods and
// their answers are in control.ts. A request may hold its connection open (`ember forward`): what it set up
// lives as long as the connection, and the daemon sends it events (lines without an id) meanwhile.
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** The client connection a request came on: what a held request hangs its lifetime and its events on. */
export interface ControlConnection {
  /** Runs fn once when the client's connection closes, however it ends (the CLI exits, dies or is killed). */
  onClose(fn: () => void): void;
  /** One event line to the client (no id: not an answer), while the connection is open. */
  notify(event: Record<string, unknown>): void;
}

export type ControlHandler = (method: string, params: Record<string, unknown>, conn: ControlConnection) => Promise<unknown>;

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
    const closeHooks: (() => void)[] = [];
    const conn: ControlConnection = {
      onClose: (fn) => { if (s.destroyed) fn(); else closeHooks.push(fn); },
      notify: (event) => { if (!s.destroyed && s.writable) s.write(JSON.stringify(event) + "\n"); },
    };
    s.on("close", () => {
      this.sockets.delete(s);
      for (const fn of closeHooks.splice(0)) fn();
    });
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
        void this.answer(s, conn, line);
      }
    });
  }

  private async answer(s: Socket, conn: ControlConnection, line: string): Promise<void> {
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
      const result = await this.handler(req.method, (req.params && typeof req.params === "object" ? req.params : {}) as Record<string, unknown>, conn);
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

function socketError(path: string, err: NodeJS.ErrnoException): Error {
  return new Error(err.code === "ENOENT" || err.code === "ECONNREFUSED"
    ? `no daemon is running (nothing listens on ${path}); start one with "ember up"`
    : `control socket ${path}: ${err.message}`);
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
      reject(socketError(path, err));
    });
  });
}

export interface HeldRequest<T> {
  result: T;
  /** Settles when the daemon closes the connection (it stopped, or dropped what the request set up). */
  closed: Promise<void>;
  /** Ends the connection: the daemon undoes what the request set up. */
  release(): void;
}

/**
 * A request whose connection stays open after the answer: the daemon keeps what it set up while the connection
 * lives and sends events on it (onEvent). The open socket also keeps this process alive while it waits.
 */
export function controlHold<T = unknown>(path: string, method: string, params: Record<string, unknown>, onEvent: (e: Record<string, unknown>) => void, timeoutMs = 15_000): Promise<HeldRequest<T>> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = "";
    let answered = false;
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => { closedResolve = r; });
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`no answer from the daemon on ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding("utf8");
    c.on("connect", () => c.write(JSON.stringify({ id: 1, method, params }) + "\n"));
    c.on("data", (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: { id?: unknown; result?: T; error?: string };
        try { msg = JSON.parse(line); } catch { continue; }
        if (msg.id === undefined) { if (answered) onEvent(msg as Record<string, unknown>); continue; }
        if (answered) continue;
        answered = true;
        clearTimeout(timer);
        if (msg.error !== undefined) { c.destroy(); reject(new Error(msg.error)); return; }
        resolve({ result: msg.result as T, closed, release: () => c.end() });
      }
    });
    c.on("close", () => {
      clearTimeout(timer);
      closedResolve();
      if (!answered) reject(new Error(`the daemon on ${path} closed the connection before answering`));
    });
    c.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!answered) reject(socketError(path, err));
    });
  });
}
