// Users on devices (issue 15, docs/users.md): a person logs in on the node they use and the node gets a user
// certificate bound to its own key; the peer map carries it, so every peer decides that node's flows on the
// person's identity and groups. Logout, disable and expiry take it out of the map again: peers cut the person's
// flows on the delta. Two ways in: a password sent by the node (`ember login --password-stdin`), and a
// device code the person approves in the console (`ember login`, RFC 8628's shape).
import { createPublicKey, randomBytes, randomInt, type KeyObject } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { issueUserCert, toPem, USER_CERT_DEFAULT_TTL_MS, USER_CERT_MAX_TTL_MS, type CaMaterial, type Identity } from "../pki/index.js";
import { NAME_PATTERN } from "../pki/constants.js";
import { HttpError, readJson, sendJson } from "./http.js";
import type { MapHub } from "./map-hub.js";
import { checkPassword, dummyHash } from "./passwords.js";
import { PasswordThrottle, tooManyLogins } from "./attempt-limiter.js";
import type { ConsoleUser, NodeRecord, NodeUser, Store } from "./store.js";

/** A device code lives this long; the node polls at most once per interval. */
export const DEVICE_CODE_TTL_MS = 10 * 60_000;
export const DEVICE_POLL_INTERVAL_S = 1;
/**
 * Pending device codes held at most (each is a few hundred bytes). A device holds one at a time (a new
 * `ember login` replaces its older code), so one node asking in a loop holds one slot, not the pool.
 */
const MAX_PENDING_CODES = 1_000;
/** Password attempts: a burst, then one per interval, per user and per device. */
const LOGIN_BURST = 5;
const LOGIN_REFILL_MS = 2_000;
/** Expired logins leave the map within this (peers cut expired users on their own clock already). */
export const LOGIN_SWEEP_MS = 5_000;
/** User codes: 8 letters from an alphabet without look-alikes, shown as ABCD-EFGH. */
const USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ";

interface PendingCode {
  userCode: string;
  device: string;
  enrollmentId: string;
  expiresAt: number;
  ttlMs: number;
  /** Set once the person approved in the console; the next poll gets the certificate. */
  approvedBy?: string;
  denied?: string;
}

export interface UserLoginContext {
  store: Store;
  hub: () => MapHub;
  ca: CaMaterial;
  log: Logger;
  /** Where a person approves a device code: the console's /ui/device page. */
  consoleUrl: () => string | undefined;
  userCertTtlMs?: number;
}

export class UserLogins {
  private readonly byDeviceCode = new Map<string, PendingCode>();
  private readonly byUserCode = new Map<string, string>();
  /** device name -> its one pending device code. */
  private readonly byDevice = new Map<string, string>();
  private readonly attempts = new PasswordThrottle(LOGIN_BURST, LOGIN_REFILL_MS);
  readonly counters = { logins: 0, refused: 0, logouts: 0, expired: 0, disabled: 0 };

  constructor(private readonly ctx: UserLoginContext) {}

  /** POST /v1/login: {username, password, ttlMs?} from the device's mTLS connection. */
  async passwordLogin(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, 4096);
    const username = typeof b.username === "string" ? b.username.trim().toLowerCase() : "";
    const password = typeof b.password === "string" ? b.password : "";
    // The device first: a device that spent its attempts costs no lookup and leaves no trace.
    if (!this.attempts.allowSource(id.name)) throw tooManyLogins(res, LOGIN_REFILL_MS);
    const user = NAME_PATTERN.test(username) ? await this.ctx.store.getUser(username) : undefined;
    if (!this.attempts.allowUser(username, user !== undefined)) throw tooManyLogins(res, LOGIN_REFILL_MS);
    const ok = await checkPassword(password, user?.passwordHash ?? await dummyHash());
    if (!user || !ok) return this.refuse(id, username, 401, "bad_credentials", "unknown user or wrong password");
    const ttlMs = this.ttl(b.ttlMs);
    sendJson(res, 200, await this.grant(id, user, ttlMs, "password"));
  }

  /** POST /v1/login/device: a code for the person to approve in the console. */
  async deviceStart(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, 1024);
    const consoleUrl = this.ctx.consoleUrl();
    if (!consoleUrl) throw new HttpError(409, "no_console", "this coordination server runs no console: log in with a password (ember login --user NAME --password-stdin)");
    this.sweepCodes();
    const node = this.ctx.hub().peer(id.name);
    if (!node) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
    const older = this.byDevice.get(id.name);
    if (older) this.dropCode(older);
    if (this.byDeviceCode.size >= MAX_PENDING_CODES) throw new HttpError(503, "busy", "too many logins waiting for approval: try again in a minute");
    const deviceCode = randomBytes(32).toString("base64url");
    const userCode = newUserCode();
    const pending: PendingCode = { userCode, device: id.name, enrollmentId: node.enrollmentId, expiresAt: Date.now() + DEVICE_CODE_TTL_MS, ttlMs: this.ttl(b.ttlMs) };
    this.byDeviceCode.set(deviceCode, pending);
    this.byUserCode.set(userCode, deviceCode);
    this.byDevice.set(id.name, deviceCode);
    this.ctx.log.info({ event: "device_login_started", device: id.name, userCode }, "device login waiting for approval");
    // The console's URL may carry its path (`https://host:port/ui/` with a listener of its own): the page hangs off the origin.
    const device = new URL("/ui/device", consoleUrl).href;
    sendJson(res, 200, {
      deviceCode, userCode: showCode(userCode), verificationUri: device,
      verificationUriComplete: `${device}?code=${showCode(userCode)}`, expiresIn: DEVICE_CODE_TTL_MS / 1000, interval: DEVICE_POLL_INTERVAL_S,
    });
  }

  /** POST /v1/login/device/poll {deviceCode}: 428 while pending, the login once approved, 403 when refused or gone. */
  async devicePoll(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, 1024);
    const code = typeof b.deviceCode === "string" ? b.deviceCode : "";
    const p = this.byDeviceCode.get(code);
    if (!p || p.device !== id.name) throw new HttpError(403, "expired_token", "no such device code for this node (expired, used, or never issued)");
    if (p.expiresAt <= Date.now()) { this.dropCode(code); throw new HttpError(403, "expired_token", "the device code expired before anyone approved it"); }
    if (p.denied) { this.dropCode(code); throw new HttpError(403, "access_denied", p.denied); }
    if (!p.approvedBy) return sendJson(res, 428, { error: "authorization_pending", detail: "waiting for the person to approve in the console" });
    this.dropCode(code);
    const user = await this.ctx.store.getUser(p.approvedBy);
    if (!user) return this.refuse(id, p.approvedBy, 403, "unknown_user", `user "${p.approvedBy}" no longer exists`);
    sendJson(res, 200, await this.grant(id, user, p.ttlMs, "device-code"));
  }

  /** The console's approval: the person logged into the console (`username`) takes the device with this code. */
  async approve(username: string, userCodeText: string): Promise<{ device: string }> {
    const userCode = userCodeText.toUpperCase().replace(/[^A-Z]/g, "");
    const deviceCode = this.byUserCode.get(userCode);
    const p = deviceCode ? this.byDeviceCode.get(deviceCode) : undefined;
    const unknown = new HttpError(404, "unknown_code", `no device is waiting for code "${userCodeText.slice(0, 16)}" (it expires ${DEVICE_CODE_TTL_MS / 60_000} minutes after ember login printed it)`);
    if (!p || p.expiresAt <= Date.now()) throw unknown;
    const user = await this.ctx.store.getUser(username);
    if (!user) throw new HttpError(403, "not_a_mesh_user", `no user "${username}"`);
    if (user.tenant === undefined) throw new HttpError(403, "not_a_mesh_user", this.userProblem(user, p.device)!);
    // Only a person of the device's own tenant may approve, or by failing to, cancel its login; to anyone else
    // the code is as unknown as one never issued (nor does the answer name the other tenant's device).
    if (user.tenant !== this.ctx.hub().peer(p.device)?.tenant) throw unknown;
    const why = this.userProblem(user, p.device);
    if (why) {
      p.denied = why;
      throw new HttpError(403, "not_a_mesh_user", why);
    }
    p.approvedBy = username;
    this.ctx.log.info({ event: "device_login_approved", user: username, device: p.device }, "device login approved in the console");
    return { device: p.device };
  }

  /** POST /v1/logout: whoever is logged in on this device leaves it. */
  async logout(id: Identity, res: ServerResponse): Promise<void> {
    const node = this.ctx.hub().peer(id.name);
    const who = node?.user?.name;
    if (node && who) {
      await this.ctx.store.setNodeUser({ name: id.name, enrollmentId: node.enrollmentId });
      this.setUser(id.name, undefined);
      this.counters.logouts++;
      this.ctx.log.info({ event: "user_logout", user: who, device: id.name }, "user logged out");
    }
    sendJson(res, 200, { device: id.name, loggedOut: who ?? null });
  }

  /** After `ember users disable`: the devices the store logged the person out of leave the map's view too. */
  loggedOutByStore(devices: string[], why: "disabled" | "expired"): void {
    for (const d of devices) {
      const who = this.ctx.hub().peer(d)?.user?.name;
      this.setUser(d, undefined);
      this.counters[why]++;
      this.ctx.log.info({ event: `user_${why}`, user: who, device: d }, why === "disabled" ? "user disabled: logged out" : "user login expired");
    }
  }

  /**
   * The device renewed its certificate with a new key: the person's certificate is issued again for that key,
   * with the same expiry (a renewal never lengthens a login). The new login, or undefined (none, or expired).
   */
  async rebind(node: NodeRecord, devicePublicKey: KeyObject, now = Date.now()): Promise<NodeUser | undefined> {
    const u = node.user;
    if (!u || u.notAfter - now < 1_000) return undefined;
    const cert = issueUserCert(this.ctx.ca, { user: u.name, tenant: node.tenant, groups: u.groups, device: node.name, devicePublicKey, ttlMs: u.notAfter - now, now });
    const next: NodeUser = { ...u, certPem: toPem(cert.der, "CERTIFICATE"), notAfter: cert.notAfter.getTime() };
    if (!(await this.ctx.store.setNodeUser({ name: node.name, enrollmentId: node.enrollmentId, user: next }))) return undefined;
    this.ctx.log.info({ event: "user_rebound", user: u.name, device: node.name, serial: cert.serial }, "user certificate issued again for the renewed device key");
    return next;
  }

  /** Every LOGIN_SWEEP_MS: logins whose certificate expired leave the store and the map. */
  async sweep(now = Date.now()): Promise<void> {
    this.sweepCodes(now);
    const devices = await this.ctx.store.clearExpiredLogins(now);
    if (devices.length) this.loggedOutByStore(devices, "expired");
  }

  // ---- internals -------------------------------------------------------------------------------------

  private async grant(id: Identity, user: ConsoleUser, ttlMs: number, method: string) {
    const why = this.userProblem(user, id.name, id.tenant);
    if (why) return this.refuse(id, user.username, 403, "not_allowed", why);
    const node = this.ctx.hub().peer(id.name);
    if (!node) return this.refuse(id, user.username, 403, "not_enrolled", `"${id.name}" is not an active node`);
    const devicePublicKey = publicKeyOf(id);
    const groups = user.groups ?? [];
    const cert = issueUserCert(this.ctx.ca, { user: user.username, tenant: user.tenant!, groups, device: id.name, devicePublicKey, ttlMs });
    const nodeUser: NodeUser = { name: user.username, groups, certPem: toPem(cert.der, "CERTIFICATE"), notAfter: cert.notAfter.getTime() };
    if (!(await this.ctx.store.setNodeUser({ name: id.name, enrollmentId: node.enrollmentId, user: nodeUser }))) {
      return this.refuse(id, user.username, 403, "not_enrolled", `"${id.name}" was revoked or re-enrolled meanwhile`);
    }
    this.setUser(id.name, nodeUser);
    this.counters.logins++;
    this.ctx.log.info({ event: "user_login", user: user.username, device: id.name, method, groups, serial: cert.serial, notAfter: cert.notAfter.toISOString() }, "user logged in");
    return { user: user.username, tenant: user.tenant, groups, device: id.name, certPem: nodeUser.certPem, notAfter: cert.notAfter.toISOString(), method };
  }

  /** Why this person may not log in on this device, or undefined. */
  private userProblem(user: ConsoleUser, device: string, deviceTenant?: string): string | undefined {
    if (user.tenant === undefined) return `"${user.username}" is a console administrator, not a user of the mesh (ember users add)`;
    if (user.disabled) return `user "${user.username}" is disabled`;
    const tenant = deviceTenant ?? this.ctx.hub().peer(device)?.tenant;
    if (tenant !== user.tenant) return `user "${user.username}" belongs to tenant "${user.tenant}", device "${device}" to "${tenant ?? "?"}"`;
    return undefined;
  }

  private setUser(device: string, user: NodeUser | undefined): void {
    const hub = this.ctx.hub();
    const p = hub.peer(device);
    if (p) hub.upsertPeer({ ...p, user });
  }

  private refuse(id: Identity, username: string, status: number, code: string, detail: string): never {
    this.counters.refused++;
    this.ctx.log.warn({ event: "user_login_refused", user: username.slice(0, 64), device: id.name, reason: code, detail }, "user login refused");
    throw new HttpError(status, code, detail);
  }

  private ttl(v: unknown): number {
    const max = Math.min(this.ctx.userCertTtlMs ?? USER_CERT_DEFAULT_TTL_MS, USER_CERT_MAX_TTL_MS);
    if (v === undefined) return max;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1_000) throw new HttpError(400, "bad_request", `"ttlMs" must be a whole number of ms, at least 1000`);
    return Math.min(v, max);
  }

  private sweepCodes(now = Date.now()): void {
    for (const [code, p] of this.byDeviceCode) if (p.expiresAt <= now) this.dropCode(code);
  }

  private dropCode(deviceCode: string): void {
    const p = this.byDeviceCode.get(deviceCode);
    if (p) {
      this.byUserCode.delete(p.userCode);
      if (this.byDevice.get(p.device) === deviceCode) this.byDevice.delete(p.device);
    }
    this.byDeviceCode.delete(deviceCode);
  }
}

/** The device certificate's Ed25519 key as a KeyObject: the user certificate certifies this very key. */
function publicKeyOf(id: Identity) {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_HEADER, Buffer.from(id.publicKey)]), format: "der", type: "spki" });
}

const ED25519_SPKI_HEADER = Buffer.from("302a300506032b6570032100", "hex");

function newUserCode(): string {
  let s = "";
  for (let i = 0; i < 8; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return s;
}

function showCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}
