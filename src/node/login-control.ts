// `ember login` / `ember logout` on a node: the control API's side. The daemon asks the coordination server with
// its own certificate (the user certificate is bound to this node's key, so only this node can ask for it); the
// peer map then brings the login to every peer and to this node itself (docs/users.md).
import { RequestError } from "../pki/mtls-client.js";
import { PATHS } from "../wire/coord/api.js";
import type { ControlMethods } from "./control.js";
import type { Daemon } from "./daemon.js";

export function registerLoginMethods(methods: ControlMethods, d: Daemon): void {
  const coord = () => {
    const m = d.mesh;
    if (!m) throw new Error("this node has no coordination server (--coord): users log in through one");
    return m;
  };
  methods.register("login", async (params) => {
    const username = String(params.username ?? "");
    const password = String(params.password ?? "");
    return describe(await call(() => coord().coordPost(PATHS.login, { username, password, ...ttl(params) })));
  });
  methods.register("login-device", async (params) => call(() => coord().coordPost(PATHS.loginDevice, ttl(params))));
  methods.register("login-poll", async (params) => {
    try {
      return { done: true, ...describe(await coord().coordPost(PATHS.loginDevicePoll, { deviceCode: String(params.deviceCode ?? "") })) };
    } catch (err) {
      if (err instanceof RequestError && err.status === 428) return { done: false };
      throw refusal(err);
    }
  });
  methods.register("logout", async () => call(() => coord().coordPost(PATHS.logout, {})));
}

function ttl(params: Record<string, unknown>): { ttlMs?: number } {
  return params.ttlMs === undefined ? {} : { ttlMs: Number(params.ttlMs) };
}

/** What the CLI prints: the login without the certificate's PEM. */
function describe(r: { user: string; tenant: string; groups: string[]; device: string; notAfter: string; method: string }) {
  return { user: r.user, tenant: r.tenant, groups: r.groups, device: r.device, notAfter: r.notAfter, method: r.method };
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try { return await fn(); } catch (err) { throw refusal(err); }
}

/** The server's reason, not a stack: "user alice is disabled" reaches the person who typed ember login. */
function refusal(err: unknown): Error {
  if (err instanceof RequestError) return new Error(`the coordination server refused: ${err.detail} (${err.code})`);
  return err as Error;
}
