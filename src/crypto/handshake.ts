// EmberNet's certificate-bound handshake over Noise XX. Each side's payload (msg 2 from the responder,
// msg 3 from the initiator: both encrypted, so identities stay hidden from observers) carries its
// certificate chain, an Ed25519 signature by the certificate key over its Noise static key (the binding
// libp2p uses) and a timestamp. A handshake completes only when the chain passes the PKI verifier and
// the signature binds the static key the Noise handshake authenticated. Every failure, whatever its
// cause, surfaces as a HandshakeError with a machine-readable reason.
import { sign, verify, type KeyObject } from "node:crypto";
import type { Identity, Verifier } from "../pki/index.js";
import { publicKeyFromRaw } from "./ed25519.js";
import { NoiseError, XXHandshake } from "./noise.js";
import { generateX25519 } from "./x25519.js";
import { MessageError, decodeHandshakePayload, encodeHandshakePayload } from "../wire/messages.js";
import { DH_SIZE, NOISE_PROLOGUE, STATIC_KEY_BINDING_CONTEXT } from "../wire/constants.js";
import { PROTOCOL_VERSION, UNANNOUNCED_PROTOCOL } from "../wire/protocol.js";

export interface LocalIdentity {
  /** DER certificates: leaf first, then the intermediate(s). */
  certChainDer: Uint8Array[];
  /** Ed25519 private key of the leaf certificate. */
  certPrivateKey: KeyObject;
  /** X25519 Noise static key pair (raw 32 bytes each). */
  staticPrivate: Uint8Array;
  staticPublic: Uint8Array;
  /** This node's software version, announced in the handshake payload beside PROTOCOL_VERSION. */
  software?: string;
}

/** What the peer announced in its handshake payload: protocol 1 when it announced nothing (release 0.1.0). */
export interface PeerVersion { protocol: number; software?: string }

export interface HandshakeResult {
  /** The peer's verified identity. */
  identity: Identity;
  peerStatic: Uint8Array;
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** The peer's handshake timestamp (ms): the session layer feeds it to a TimestampGuard. */
  timestamp: number;
  version: PeerVersion;
}

/** reason: a verifier reason ("expired", "revoked", "unknown_ca", ...) or "bad_binding", "decrypt_failed",
 *  "malformed", "out_of_order". The session layer adds "stale_timestamp" via TimestampGuard. */
export class HandshakeError extends Error {
  constructor(readonly reason: string, readonly detail: string) {
    super(`${reason}: ${detail}`);
    this.name = "HandshakeError";
  }
}

export function generateStaticKeyPair(): { staticPrivate: Uint8Array; staticPublic: Uint8Array } {
  const k = generateX25519();
  return { staticPrivate: k.privateKey, staticPublic: k.publicKey };
}

const prologue = new TextEncoder().encode(NOISE_PROLOGUE);
const context = new TextEncoder().encode(STATIC_KEY_BINDING_CONTEXT);

/** What the certificate key signs: a domain-separation string, then the Noise static public key. */
export function bindingMessage(staticPublic: Uint8Array): Buffer {
  return Buffer.concat([context, staticPublic]);
}

/** Ed25519 is deterministic and the static key fixed: sign once per local identity. */
const bindingCache = new WeakMap<LocalIdentity, Uint8Array>();
function bindingSignature(local: LocalIdentity): Uint8Array {
  let sig = bindingCache.get(local);
  if (!sig) {
    sig = new Uint8Array(sign(null, bindingMessage(local.staticPublic), local.certPrivateKey));
    bindingCache.set(local, sig);
  }
  return sig;
}

/**
 * Last timestamp we sent: strictly increasing even when the clock stalls, so our own retries are never stale.
 * The handshake payload and the INIT claim (src/crypto/init-claim.ts) both take theirs from here.
 */
let lastTimestamp = 0;
export function nextTimestamp(): number {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  return lastTimestamp;
}

function payloadFor(local: LocalIdentity): Uint8Array {
  return encodeHandshakePayload({ chain: local.certChainDer, sig: bindingSignature(local), ts: nextTimestamp(), proto: PROTOCOL_VERSION, sw: local.software });
}

/** Runs a step and turns ANY failure into a HandshakeError: hostile bytes must never escape as something else. */
function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof HandshakeError) throw err;
    if (err instanceof NoiseError) {
      const reason = err.message === "decrypt_failed" || err.message === "out_of_order" ? err.message : "malformed";
      throw new HandshakeError(reason, `noise: ${err.message}`);
    }
    throw new HandshakeError("malformed", `unexpected: ${(err as Error)?.message ?? String(err)}`);
  }
}

function checkKeys(local: LocalIdentity): void {
  if (local.staticPrivate.length !== DH_SIZE || local.staticPublic.length !== DH_SIZE) throw new Error("static keys must be 32-byte X25519 keys");
  if (local.certChainDer.length === 0) throw new Error("the local identity needs its certificate chain");
}

/**
 * Verified bindings (certificate key, static key, signature), by their exact bytes. A peer keeps its
 * static key across rekeys (every 2 minutes), so the same triple comes back again and again; the
 * verdict of an Ed25519 verification over the same bytes never changes. Only successes are cached.
 */
const verifiedBindings = new Map<string, true>();
const BINDING_CACHE_MAX = 16_384;

function bindingHolds(certKey: Uint8Array, peerStatic: Uint8Array, sig: Uint8Array): boolean {
  const id = Buffer.concat([certKey, peerStatic, sig]).toString("base64");
  if (verifiedBindings.has(id)) return true;
  let ok = false;
  try {
    ok = verify(null, bindingMessage(peerStatic), publicKeyFromRaw(certKey), sig);
  } catch {
    ok = false;
  }
  if (ok) {
    verifiedBindings.set(id, true);
    if (verifiedBindings.size > BINDING_CACHE_MAX) verifiedBindings.delete(verifiedBindings.keys().next().value!);
  }
  return ok;
}

/** Verifies the peer's payload against the static key Noise authenticated. */
function authenticate(payloadBytes: Uint8Array, peerStatic: Uint8Array, verifier: Verifier): { identity: Identity; timestamp: number; version: PeerVersion } {
  let payload;
  try {
    payload = decodeHandshakePayload(payloadBytes);
  } catch (err) {
    throw new HandshakeError("malformed", err instanceof MessageError ? err.message : "bad handshake payload");
  }
  const r = verifier.verifyChain(payload.chain);
  if (!r.ok) throw new HandshakeError(r.reason, r.detail);
  if (!bindingHolds(r.identity.publicKey, peerStatic, payload.sig)) throw new HandshakeError("bad_binding", `the certificate of ${r.identity.name} did not sign this handshake's static key`);
  return { identity: r.identity, timestamp: payload.ts, version: { protocol: payload.proto ?? UNANNOUNCED_PROTOCOL, software: payload.sw } };
}

export class Initiator {
  private readonly hs: XXHandshake;
  private peer?: { identity: Identity; timestamp: number; version: PeerVersion };
  private res?: HandshakeResult;

  constructor(private readonly local: LocalIdentity, private readonly verifier: Verifier) {
    checkKeys(local);
    this.hs = new XXHandshake({ initiator: true, staticKey: { privateKey: local.staticPrivate, publicKey: local.staticPublic }, prologue });
  }

  /** Message 1 (-> e): 32 bytes, no payload. */
  writeInit(): Uint8Array {
    return guarded(() => this.hs.writeMessage(new Uint8Array(0)));
  }

  /** Message 2: authenticates the responder (chain, binding); throws HandshakeError on any failure. */
  readResp(msg: Uint8Array): void {
    // authenticate inside readMessage: a forged or foreign response leaves the state untouched, so the
    // genuine response can still complete this handshake
    guarded(() => this.hs.readMessage(msg, (payload) => {
      this.peer = authenticate(payload, this.hs.remoteStatic!, this.verifier);
    }));
  }

  /** Message 3 (-> s, se, payload); after it the transport keys exist. */
  writeFinal(): Uint8Array {
    return guarded(() => {
      if (!this.peer) throw new HandshakeError("out_of_order", "final message before a verified response");
      const out = this.hs.writeMessage(payloadFor(this.local));
      const [send, recv] = this.hs.split();
      this.res = { ...this.peer, peerStatic: this.hs.remoteStatic!, sendKey: send, recvKey: recv };
      return out;
    });
  }

  result(): HandshakeResult {
    if (!this.res) throw new HandshakeError("out_of_order", "handshake not complete");
    return this.res;
  }
}

export class Responder {
  private readonly hs: XXHandshake;
  private res?: HandshakeResult;

  constructor(private readonly local: LocalIdentity, private readonly verifier: Verifier) {
    checkKeys(local);
    this.hs = new XXHandshake({ initiator: false, staticKey: { privateKey: local.staticPrivate, publicKey: local.staticPublic }, prologue });
  }

  readInit(msg: Uint8Array): void {
    guarded(() => {
      if (msg.length !== DH_SIZE) throw new HandshakeError("malformed", `message 1 must be ${DH_SIZE} bytes (no payload), got ${msg.length}`);
      this.hs.readMessage(msg);
    });
  }

  writeResp(): Uint8Array {
    return guarded(() => this.hs.writeMessage(payloadFor(this.local)));
  }

  /** Message 3: authenticates the initiator; only then do the transport keys exist. */
  readFinal(msg: Uint8Array): void {
    guarded(() => this.hs.readMessage(msg, (payload) => {
      const peer = authenticate(payload, this.hs.remoteStatic!, this.verifier);
      const [recv, send] = this.hs.split();
      this.res = { ...peer, peerStatic: this.hs.remoteStatic!, sendKey: send, recvKey: recv };
    }));
  }

  result(): HandshakeResult {
    if (!this.res) throw new HandshakeError("out_of_order", "handshake not complete");
    return this.res;
  }
}

/**
 * Greatest handshake timestamp accepted per identity name. The session layer calls accept() after a
 * handshake authenticated and before it installs the keys: a handshake whose timestamp is not newer
 * than one already accepted from that identity is refused ("stale_timestamp"), so a recorded handshake
 * can never replace a live session. Bounded: the least recently accepted identities are forgotten.
 */
export class TimestampGuard {
  private readonly seen = new Map<string, number>();
  constructor(private readonly maxIdentities = 65_536) {}

  accept(identityName: string, ts: number): boolean {
    const last = this.seen.get(identityName);
    if (last !== undefined && ts <= last) return false;
    this.seen.delete(identityName);
    this.seen.set(identityName, ts);
    if (this.seen.size > this.maxIdentities) this.seen.delete(this.seen.keys().next().value!);
    return true;
  }

  latest(identityName: string): number | undefined {
    return this.seen.get(identityName);
  }
}
