// The coordination server's route table: which handler answers a method and path, and who may call it. The
// lookup is pure (method + path in, route and path parameters out); the server's dispatcher (server.ts) does the
// checks a route's access level asks for, in this order, before any handler runs:
//   open     anyone: health, the trust bundle, enrollment, and the console (which authenticates on its own);
//   identity a client certificate the PKI verifier accepts (else 401 with the verifier's reason);
//   member   ... of an active node of the mesh (else 403 not_enrolled);
//   admin    ... granting role admin (else 403 not_admin; every path under ADMIN_PREFIX needs it, known or not).
// classifyFailure is the one place a handler's failure becomes a status code.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Identity } from "../pki/index.js";
import { ADMIN_PREFIX } from "../wire/coord/api.js";
import { HttpError } from "./http.js";
import { storeOutageAnswer } from "./store-outage.js";

export type Access = "open" | "identity" | "member" | "admin";

/** One request as a handler sees it: `params` are the path pattern's captures, still percent-encoded. */
export interface OpenCall { req: IncomingMessage; res: ServerResponse; url: URL; params: string[] }
/** A request whose client certificate the verifier accepted: `id` is that identity. */
export interface Call extends OpenCall { id: Identity }

type Answer = Promise<void> | void;
export type Route =
  | { method: string; path: string | RegExp; access: "open"; handle: (c: OpenCall) => Answer }
  | { method: string; path: string | RegExp; access: Exclude<Access, "open">; handle: (c: Call) => Answer };

/** Any method (the console routes its own). */
export const ANY_METHOD = "*";

export interface Found { route: Route; params: string[] }

/** The first route whose method and path match, with the path pattern's captures; undefined when none does. */
export function findRoute(routes: readonly Route[], method: string, path: string): Found | undefined {
  for (const route of routes) {
    if (route.method !== ANY_METHOD && route.method !== method) continue;
    if (typeof route.path === "string") {
      if (route.path === path) return { route, params: [] };
      continue;
    }
    const m = route.path.exec(path);
    if (m) return { route, params: m.slice(1) };
  }
  return undefined;
}

/** Whether a path needs role admin whatever route (if any) answers it. */
export function needsAdmin(path: string): boolean {
  return path.startsWith(ADMIN_PREFIX);
}

export interface Failure {
  answer: HttpError;
  /** How the server logs it: a refusal the client caused (not for 404s), the store being away, or a bug. */
  log: "none" | "refused" | "store_unavailable" | "internal";
}

/**
 * What a failed handler answers: its own HttpError; 503 naming the store when the store is unreachable (clients
 * try another replica); 500 for anything else (a bug, logged with its stack, never shown).
 */
export function classifyFailure(err: unknown, storeLabel: string): Failure {
  if (err instanceof HttpError) return { answer: err, log: err.status === 404 ? "none" : "refused" };
  const outage = storeOutageAnswer(err, storeLabel);
  if (outage) return { answer: outage, log: "store_unavailable" };
  return { answer: new HttpError(500, "internal", "internal error (logged on the server)"), log: "internal" };
}
