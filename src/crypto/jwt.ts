// Compact JWS/JWT with EdDSA (Ed25519, RFC 8037) on node:crypto: the coordination server signs the
// machine-to-machine access and refresh tokens (telemetry) and the console's session tokens with it.
// Verification is strict and says why it refuses: the header must be exactly {alg: EdDSA, typ, kid} of our
// key, the payload must carry iss, aud, sub, iat, exp and jti, and the time checks allow a small skew.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

export type JwtRefusal =
  | "malformed" | "wrong_algorithm" | "unknown_key" | "bad_signature" | "wrong_type"
  | "wrong_issuer" | "wrong_audience" | "expired" | "not_yet_valid";

export type JwtResult = { ok: true; claims: JwtClaims } | { ok: false; reason: JwtRefusal; detail: string };

export interface JwtClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
  nbf?: number;
  [claim: string]: unknown;
}

/** Tokens are short: a header, a few claims, a 64-byte signature. Anything longer is refused unparsed. */
export const MAX_JWT_CHARS = 4096;
/** Clock skew allowed on exp/nbf/iat, seconds (the server checks against its own clock: only its skew matters). */
export const JWT_SKEW_S = 5;

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** RFC 7638 thumbprint of an Ed25519 public key (JWK {crv, kty, x}): the key id. */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: "jwk" }) as { x: string };
  return createHash("sha256").update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`).digest("base64url");
}

/** RFC 8705 certificate thumbprint (x5t#S256): SHA-256 of the certificate's DER, base64url. */
export function certThumbprint(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("base64url");
}

export class JwtKey {
  readonly kid: string;
  readonly publicKey: KeyObject;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== "ed25519") throw new Error("token signing key must be Ed25519");
    this.publicKey = createPublicKey(privateKey);
    this.kid = jwkThumbprint(this.publicKey);
  }

  static generate(): JwtKey {
    return new JwtKey(generateKeyPairSync("ed25519").privateKey);
  }

  /** Loads the key from `file`, or makes one and stores it there (0600). */
  static loadOrCreate(file: string): JwtKey {
    if (existsSync(file)) return new JwtKey(createPrivateKey(readFileSync(file, "utf8")));
    const k = generateKeyPairSync("ed25519").privateKey;
    writeFileSync(file, k.export({ format: "pem", type: "pkcs8" }) as string, { mode: 0o600, flag: "wx" });
    return new JwtKey(k);
  }

  /** The public key as a JWK Set (published for other verifiers). */
  jwks(): { keys: Record<string, string>[] } {
    const jwk = this.publicKey.export({ format: "jwk" }) as Record<string, string>;
    return { keys: [{ ...jwk, kid: this.kid, alg: "EdDSA", use: "sig" }] };
  }

  sign(typ: string, claims: JwtClaims): string {
    const head = b64(JSON.stringify({ alg: "EdDSA", typ, kid: this.kid }));
    const body = b64(JSON.stringify(claims));
    const sig = sign(null, Buffer.from(`${head}.${body}`), this.privateKey);
    return `${head}.${body}.${b64(sig)}`;
  }

  /** Checks the token in this order: shape, header, signature, type, issuer, audience, time. */
  verify(token: string, expect: { typ: string; iss: string; aud: string; now?: number }): JwtResult {
    const fail = (reason: JwtRefusal, detail: string): JwtResult => ({ ok: false, reason, detail });
    if (typeof token !== "string" || token.length > MAX_JWT_CHARS) return fail("malformed", `a token is a string of at most ${MAX_JWT_CHARS} characters`);
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return fail("malformed", "not a compact JWS (three base64url parts)");
    let header: any, claims: any;
    try {
      header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    } catch { return fail("malformed", "header or payload is not base64url JSON"); }
    if (!header || typeof header !== "object" || !claims || typeof claims !== "object" || Array.isArray(claims)) return fail("malformed", "header and payload must be JSON objects");
    if (header.alg !== "EdDSA") return fail("wrong_algorithm", `alg "${String(header.alg)}" is not accepted (only EdDSA)`);
    if (header.kid !== this.kid) return fail("unknown_key", `kid "${String(header.kid)}" is not this server's signing key`);
    const sig = Buffer.from(parts[2], "base64url");
    if (sig.length !== 64 || !verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), this.publicKey, sig)) return fail("bad_signature", "the signature does not verify (tampered, or signed by another key)");
    if (header.typ !== expect.typ) return fail("wrong_type", `token type "${String(header.typ)}" where "${expect.typ}" is needed`);
    for (const k of ["iss", "sub", "aud", "jti"]) if (typeof claims[k] !== "string") return fail("malformed", `claim "${k}" missing`);
    for (const k of ["iat", "exp"]) if (!Number.isSafeInteger(claims[k])) return fail("malformed", `claim "${k}" missing`);
    if (claims.iss !== expect.iss) return fail("wrong_issuer", `issued by "${claims.iss}", not "${expect.iss}"`);
    if (claims.aud !== expect.aud) return fail("wrong_audience", `token is for audience "${claims.aud}", this endpoint is "${expect.aud}"`);
    const now = Math.floor((expect.now ?? Date.now()) / 1000);
    if (now > claims.exp + JWT_SKEW_S) return fail("expired", `token expired ${now - claims.exp} s ago (at ${new Date(claims.exp * 1000).toISOString()})`);
    const nbf = Number.isSafeInteger(claims.nbf) ? claims.nbf : claims.iat;
    if (now + JWT_SKEW_S < nbf) return fail("not_yet_valid", `token is valid only from ${new Date(nbf * 1000).toISOString()}`);
    return { ok: true, claims: claims as JwtClaims };
  }
}
