// The admin side of the coordination API, used by `ember token|nodes|policy` (src/cli/admin.ts): an mTLS
// client with an admin certificate (from `ember cert issue --admin`) that verifies the server as
// "coord"/role "server". Configuration faults are AdminConfigError; server refusals RequestError.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadTlsCredentials, Verifier } from "../pki/index.js";
import { PATHS, TELEMETRY_PATHS } from "./protocol.js";
import { requestJson, verifiedAgent } from "../pki/mtls-client.js";
import { COORD_SERVER } from "../wire/coord-api.js";
import { acrossReplicas } from "../wire/coord-failover.js";
import { coordOrigins } from "../wire/coord-origins.js";

export interface AdminConnectionFlags { coord?: string; cert?: string; key?: string; ca?: string; state?: string }

export class AdminConfigError extends Error {}

export class AdminClient {
  /** The replicas (`--coord URL1,URL2`), asked in order: the first that answers is the answer. */
  private readonly origins: string[];
  private readonly agent;

  constructor(flags: AdminConnectionFlags, env: NodeJS.ProcessEnv = process.env) {
    const coord = flags.coord ?? env.EMBER_COORD;
    const pick = (flag: string | undefined, envName: string, stateFile: string) =>
      flag ?? env[envName] ?? (flags.state && existsSync(join(flags.state, stateFile)) ? join(flags.state, stateFile) : undefined);
    const cert = pick(flags.cert, "EMBER_CERT", "cert.pem");
    const key = pick(flags.key, "EMBER_KEY", "key.pem");
    const ca = pick(flags.ca, "EMBER_CA", "bundle.pem");
    const missing = [!coord && "--coord", !cert && "--cert", !key && "--key", !ca && "--ca"].filter(Boolean);
    if (missing.length) throw new AdminConfigError(`missing ${missing.join(", ")} (or EMBER_COORD/EMBER_CERT/EMBER_KEY/EMBER_CA, or --state DIR)`);
    try { this.origins = coordOrigins(coord!); } catch (err) { throw new AdminConfigError(`--coord: ${(err as Error).message}`); }
    let creds;
    try { creds = loadTlsCredentials(cert!, key!, ca!); } catch (err) { throw new AdminConfigError((err as Error).message); }
    this.agent = verifiedAgent({ verifier: new Verifier({ bundlePem: creds.bundlePem }), expect: COORD_SERVER, certChainPem: creds.certChainPem, keyPem: creds.keyPem, keepAlive: false });
  }

  /**
   * One call, to the next replica when one cannot answer (down, or 503 without its store). A POST that may have
   * reached a replica before it failed is not repeated elsewhere: creating a token twice is not harmless.
   */
  private call(method: string, path: string, body?: unknown): Promise<any> {
    return acrossReplicas(this.origins, (origin) => requestJson(this.agent, origin + path, method, body), { idempotent: method !== "POST" })
      .finally(() => this.agent.destroy());
  }

  createToken(t: { tenant: string; groups: string[]; roles: string[]; ttlMs?: number; uses?: number; certTtlMs?: number; allowAdminRole?: boolean; allowInfraRole?: boolean }) {
    return this.call("POST", PATHS.adminTokens, t);
  }
  listNodes() { return this.call("GET", PATHS.adminNodes); }
  revoke(name: string) { return this.call("POST", `${PATHS.adminNodes}/${encodeURIComponent(name)}/revoke`); }
  getPolicy() { return this.call("GET", PATHS.adminPolicy); }
  setPolicy(source: string) { return this.call("PUT", PATHS.adminPolicy, { source }); }
  checkPolicy(from: string, to: string) { return this.call("POST", PATHS.adminPolicyCheck, { from, to }); }
  putUser(username: string, password: string, replace = false) { return this.call("POST", TELEMETRY_PATHS.adminUsers, { username, password, replace }); }
  /** A user of the mesh (`ember users add`): a tenant and groups make a person policies name as user:NAME. */
  putMeshUser(u: { username: string; password: string; tenant: string; groups: string[]; replace?: boolean }) { return this.call("POST", TELEMETRY_PATHS.adminUsers, u); }
  setUserDisabled(username: string, disabled: boolean) { return this.call("POST", `${TELEMETRY_PATHS.adminUsers}/${encodeURIComponent(username)}/${disabled ? "disable" : "enable"}`); }
  listUsers() { return this.call("GET", TELEMETRY_PATHS.adminUsers); }
  deleteUser(username: string) { return this.call("DELETE", `${TELEMETRY_PATHS.adminUsers}/${encodeURIComponent(username)}`); }
}
