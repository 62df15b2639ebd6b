// Who a peer's flows come from (issue 15, docs/users.md): the machine its session certificate names, or the
// person logged in on it, whose user certificate the peer map carries. A user certificate counts only when it
// verifies (chain, validity, revocation, the user profile) and is bound to that very device: its device grant
// names the session's identity and its key is the key of the device's certificate (the map's current one or
// the session's: the two differ for a moment after the device renewed). Anything else falls back to the
// machine, as a logout does. This node's own login needs no key check: it is its own server's word.
import type { Logger } from "pino";
import { pemBlocks, type Identity, type UserIdentity, type Verifier } from "../pki/index.js";
import type { Principal } from "../policy/index.js";
import { principalOf } from "./flow-policy.js";

interface Cached { pem: string; sessionFp: string; user?: UserIdentity }

export class UserBindings {
  private readonly peers = new Map<string, Cached>();
  private self?: { pem: string; user?: UserIdentity };
  private expiryTimer?: NodeJS.Timeout;

  constructor(
    private readonly verifier: Verifier,
    private readonly log: Logger,
    /** Called when a login the node relies on expires: live flows must be checked again. */
    private readonly onExpiry: () => void,
  ) {}

  /** The person logged in on this node, if any (from the map's self entry). */
  selfUser(own: Identity, pem: string | undefined, now = Date.now()): UserIdentity | undefined {
    if (!pem) { this.self = undefined; return undefined; }
    if (this.self?.pem !== pem) {
      const r = this.verifyPem(pem, { name: own.name, tenant: own.tenant, publicKey: "own-map" }, now);
      if (!r.ok) this.log.warn({ event: "user_cert_refused", device: own.name, reason: r.detail }, "this node's user certificate refused: flows stay the machine's");
      this.self = { pem, user: r.ok ? r.user : undefined };
      this.armExpiry();
    }
    const u = this.self.user;
    return u && u.notAfter.getTime() > now ? u : undefined;
  }

  /**
   * The principal a peer's flows are decided on. `session`: the identity its session verified; `mapCertPem`: the
   * certificate the map holds for it; `pem`: the user certificate the map holds, if any.
   */
  peerPrincipal(session: Identity, mapCertPem: string | undefined, pem: string | undefined, now = Date.now()): Principal {
    if (!pem) { this.peers.delete(session.name); return principalOf(session); }
    let c = this.peers.get(session.name);
    if (!c || c.pem !== pem || c.sessionFp !== session.fingerprint) {
      c = { pem, sessionFp: session.fingerprint, user: this.verifyBound(session, mapCertPem, pem, now) };
      this.peers.set(session.name, c);
      this.armExpiry();
    }
    const u = c.user;
    if (!u || u.notAfter.getTime() <= now) return principalOf(session);
    return { name: u.name, tenant: u.tenant, groups: u.groups, kind: "user", device: session.name };
  }

  /** Forgets a peer (it left the map). */
  forget(name: string): void {
    this.peers.delete(name);
  }

  close(): void {
    clearTimeout(this.expiryTimer);
  }

  private verifyBound(session: Identity, mapCertPem: string | undefined, pem: string, now: number): UserIdentity | undefined {
    let last = "";
    const m = mapCertPem ? this.verifier.verifyPem(mapCertPem, { now }) : undefined;
    const mapCert = m?.ok ? m.identity : undefined;
    for (const device of mapCert && mapCert.fingerprint !== session.fingerprint ? [session, mapCert] : [session]) {
      if (device.name !== session.name) continue;
      const r = this.verifyPem(pem, device, now);
      if (r.ok) return r.user;
      last = r.detail;
    }
    this.log.warn({ event: "user_cert_refused", device: session.name, reason: last }, "a peer's user certificate refused: its flows are the machine's");
    return undefined;
  }

  private verifyPem(pem: string, device: Parameters<Verifier["verifyUser"]>[1], now: number) {
    let ders: Uint8Array[];
    try { ders = pemBlocks(pem, "CERTIFICATE", "user certificate"); } catch (err) {
      return { ok: false as const, reason: "malformed" as const, detail: (err as Error).message };
    }
    return this.verifier.verifyUser(ders, device, now);
  }

  /** One timer at the earliest expiry of a login in use: at that instant flows are decided again. */
  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const now = Date.now();
    let next = Infinity;
    const consider = (u?: UserIdentity) => { if (u && u.notAfter.getTime() > now) next = Math.min(next, u.notAfter.getTime()); };
    consider(this.self?.user);
    for (const c of this.peers.values()) consider(c.user);
    if (next === Infinity) return;
    this.expiryTimer = setTimeout(() => { this.onExpiry(); this.armExpiry(); }, Math.min(next - now + 1, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }
}
