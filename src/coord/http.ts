// Small HTTP helpers for the coordination server: bounded JSON bodies and uniform JSON errors.
import type { IncomingMessage, ServerResponse } from "node:http";

export class HttpError extends Error {
  constructor(
    readonly status: number, readonly code: string, readonly detail: string, readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(`${code}: ${detail}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, close = false, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return; }
  const text = JSON.stringify(body) + "\n";
  res.writeHead(status, {
    ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store",
    ...(close ? { connection: "close" } : {}),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  // 413 and framing errors leave unread bytes on the connection: close it after answering.
  sendJson(res, err.status, { error: err.code, detail: err.detail, ...err.extra }, err.status === 413 || err.status === 400, err.headers);
}

/** Reads the whole body, refusing more than `limit` bytes before buffering them; `why` explains the limit in a 413. */
export function readBody(req: IncomingMessage, limit: number, why = ""): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new HttpError(413, "body_too_large", `request body of ${declared} bytes exceeds the ${limit}-byte limit${why}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.pause();
        reject(new HttpError(413, "body_too_large", `request body exceeds the ${limit}-byte limit${why}`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } });
    req.on("error", (e) => { if (!done) { done = true; reject(new HttpError(400, "bad_request", e.message)); } });
  });
}

export async function readJson(req: IncomingMessage, limit: number, why?: string): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit, why);
  let v: unknown;
  try { v = JSON.parse(body.toString("utf8")); } catch {
    throw new HttpError(400, "bad_json", "request body is not JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new HttpError(400, "bad_json", "request body must be a JSON object");
  return v as Record<string, unknown>;
}

export function str(body: Record<string, unknown>, key: string, max = 4096): string {
  const v = body[key];
  if (typeof v !== "string" || v.length === 0) throw new HttpError(400, "bad_request", `"${key}" must be a non-empty string`);
  if (v.length > max) throw new HttpError(400, "bad_request", `"${key}" is longer than ${max} characters`);
  return v;
}
