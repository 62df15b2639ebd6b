// Noise XX (Noise Protocol Framework rev 34) with X25519 and ChaCha20-Poly1305; SHA-256 for EmberNet,
// BLAKE2s available so both cacophony vector sets run. Keys can be injected for the test vectors.
//   XX:  -> e
//        <- e, ee, s, es
//        -> s, se
import { createHash, createHmac } from "node:crypto";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { open, seal } from "./aead.js";
import { dh, generateX25519, publicFromPrivate } from "./x25519.js";

export type NoiseHash = "SHA256" | "BLAKE2s";

/** HASH(a || b) and HMAC-HASH(key, a || b); two parts so callers need not concatenate. */
interface HashFns { hash(a: Uint8Array, b?: Uint8Array): Uint8Array; hmac(key: Uint8Array, a: Uint8Array, b?: Uint8Array): Uint8Array }

const EMPTY = new Uint8Array(0);
const HASHES: Record<NoiseHash, HashFns> = {
  SHA256: { // node:crypto, native (see docs/crypto.md for the choice)
    hash: (a, b = EMPTY) => createHash("sha256").update(a).update(b).digest(),
    hmac: (k, a, b = EMPTY) => createHmac("sha256", k).update(a).update(b).digest(),
  },
  BLAKE2s: { // @noble/hashes: node:crypto has no BLAKE2s; kept so the BLAKE2s vectors run too
    hash: (a, b = EMPTY) => blake2s.create().update(a).update(b).digest(),
    hmac: (k, a, b = EMPTY) => hmac.create(blake2s, k).update(a).update(b).digest(),
  },
};

const HASHLEN = 32;
const DHLEN = 32;

export class NoiseError extends Error {}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

class CipherState {
  k?: Uint8Array;
  n = 0;
  encrypt(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (!this.k) return plaintext;
    return seal(this.k, this.n++, ad, plaintext);
  }
  decrypt(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (!this.k) return ciphertext;
    const p = open(this.k, this.n, ad, ciphertext);
    if (!p) throw new NoiseError("decrypt_failed");
    this.n++;
    return p;
  }
}

class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  readonly cipher = new CipherState();

  constructor(readonly fns: HashFns, protocolName: string) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASHLEN) { this.h = new Uint8Array(HASHLEN); this.h.set(name); } else this.h = fns.hash(name);
    this.ck = this.h;
  }

  hkdf(ikm: Uint8Array): [Uint8Array, Uint8Array] {
    const temp = this.fns.hmac(this.ck, ikm);
    const o1 = this.fns.hmac(temp, Uint8Array.of(1));
    const o2 = this.fns.hmac(temp, o1, Uint8Array.of(2));
    return [o1, o2];
  }
  mixKey(ikm: Uint8Array): void {
    const [ck, k] = this.hkdf(ikm);
    this.ck = ck;
    this.cipher.k = k.subarray(0, 32);
    this.cipher.n = 0;
  }
  mixHash(data: Uint8Array): void {
    this.h = this.fns.hash(this.h, data);
  }
  encryptAndHash(p: Uint8Array): Uint8Array {
    const c = this.cipher.encrypt(this.h, p);
    this.mixHash(c);
    return c;
  }
  decryptAndHash(c: Uint8Array): Uint8Array {
    const p = this.cipher.decrypt(this.h, c);
    this.mixHash(c);
    return p;
  }
  split(): [Uint8Array, Uint8Array] {
    const [k1, k2] = this.hkdf(new Uint8Array(0));
    return [k1.subarray(0, 32), k2.subarray(0, 32)];
  }
}

export interface KeyPair { privateKey: Uint8Array; publicKey: Uint8Array }

export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  return { privateKey, publicKey: publicFromPrivate(privateKey) };
}

export interface XXOptions {
  initiator: boolean;
  staticKey: KeyPair;
  prologue?: Uint8Array;
  hash?: NoiseHash;
  /** Test vectors only: a fixed ephemeral key. */
  ephemeral?: KeyPair;
}

/** One side of a Noise XX handshake. Messages alternate: initiator writes 1 and 3, responder writes 2. */
export class XXHandshake {
  private readonly ss: SymmetricState;
  private e?: KeyPair;
  private re?: Uint8Array;
  private rs?: Uint8Array;
  private step = 0;

  constructor(private readonly o: XXOptions) {
    const hash = o.hash ?? "SHA256";
    this.ss = new SymmetricState(HASHES[hash], `Noise_XX_25519_ChaChaPoly_${hash}`);
    this.ss.mixHash(o.prologue ?? new Uint8Array(0));
  }

  get handshakeHash(): Uint8Array {
    return this.ss.h;
  }

  /** The peer's static key, known after message 2 (initiator) or 3 (responder). */
  get remoteStatic(): Uint8Array | undefined {
    return this.rs;
  }

  get complete(): boolean {
    return this.step === 3;
  }

  private expect(step: number, writing: boolean): void {
    const mine = this.o.initiator ? step !== 1 : step === 1;
    if (this.step !== step || mine !== writing) throw new NoiseError("out_of_order");
  }

  private ephemeral(): KeyPair {
    this.e = this.o.ephemeral ?? (() => { const k = generateX25519(); return { privateKey: k.privateKey, publicKey: k.publicKey }; })();
    return this.e;
  }

  private dh(priv: Uint8Array, pub: Uint8Array): Uint8Array {
    try {
      return dh(priv, pub);
    } catch {
      throw new NoiseError("bad_public_key");
    }
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    const ss = this.ss;
    switch (this.step) {
      case 0: { // -> e
        this.expect(0, true);
        const e = this.ephemeral();
        ss.mixHash(e.publicKey);
        const c = ss.encryptAndHash(payload);
        this.step = 1;
        return concat(e.publicKey, c);
      }
      case 1: { // <- e, ee, s, es
        this.expect(1, true);
        const e = this.ephemeral();
        ss.mixHash(e.publicKey);
        ss.mixKey(this.dh(e.privateKey, this.re!));
        const s = ss.encryptAndHash(this.o.staticKey.publicKey);
        ss.mixKey(this.dh(this.o.staticKey.privateKey, this.re!));
        const c = ss.encryptAndHash(payload);
        this.step = 2;
        return concat(e.publicKey, s, c);
      }
      case 2: { // -> s, se
        this.expect(2, true);
        const s = ss.encryptAndHash(this.o.staticKey.publicKey);
        ss.mixKey(this.dh(this.o.staticKey.privateKey, this.re!));
        const c = ss.encryptAndHash(payload);
        this.step = 3;
        return concat(s, c);
      }
      default: throw new NoiseError("out_of_order");
    }
  }

  /**
   * Reads the next message and returns its payload. Atomic: when the message fails (bad length, bad
   * key, failed decryption) or `accept(payload)` throws, the state is exactly as before, so a forged
   * message injected by an attacker cannot kill a handshake in progress.
   */
  readMessage(msg: Uint8Array, accept?: (payload: Uint8Array) => void): Uint8Array {
    const saved = { ck: this.ss.ck, h: this.ss.h, k: this.ss.cipher.k, n: this.ss.cipher.n, re: this.re, rs: this.rs, step: this.step };
    try {
      const payload = this.readStep(msg);
      accept?.(payload);
      return payload;
    } catch (err) {
      this.ss.ck = saved.ck; this.ss.h = saved.h; this.ss.cipher.k = saved.k; this.ss.cipher.n = saved.n;
      this.re = saved.re; this.rs = saved.rs; this.step = saved.step;
      throw err;
    }
  }

  private readStep(msg: Uint8Array): Uint8Array {
    const ss = this.ss;
    switch (this.step) {
      case 0: {
        this.expect(0, false);
        if (msg.length < DHLEN) throw new NoiseError("truncated");
        this.re = msg.slice(0, DHLEN);
        ss.mixHash(this.re);
        const p = ss.decryptAndHash(msg.subarray(DHLEN));
        this.step = 1;
        return p;
      }
      case 1: {
        this.expect(1, false);
        if (msg.length < DHLEN + DHLEN + 16 + 16) throw new NoiseError("truncated");
        this.re = msg.slice(0, DHLEN);
        ss.mixHash(this.re);
        ss.mixKey(this.dh(this.e!.privateKey, this.re));
        this.rs = ss.decryptAndHash(msg.subarray(DHLEN, DHLEN + DHLEN + 16));
        ss.mixKey(this.dh(this.e!.privateKey, this.rs));
        const p = ss.decryptAndHash(msg.subarray(DHLEN + DHLEN + 16));
        this.step = 2;
        return p;
      }
      case 2: {
        this.expect(2, false);
        if (msg.length < DHLEN + 16 + 16) throw new NoiseError("truncated");
        this.rs = ss.decryptAndHash(msg.subarray(0, DHLEN + 16));
        ss.mixKey(this.dh(this.e!.privateKey, this.rs));
        const p = ss.decryptAndHash(msg.subarray(DHLEN + 16));
        this.step = 3;
        return p;
      }
      default: throw new NoiseError("out_of_order");
    }
  }

  /** Transport keys: [initiator->responder, responder->initiator]. */
  split(): [Uint8Array, Uint8Array] {
    if (this.step !== 3) throw new NoiseError("handshake not complete");
    return this.ss.split();
  }
}
