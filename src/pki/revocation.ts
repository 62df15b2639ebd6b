// The signed revocation list: serial numbers revoked by the cluster CA, numbered so that a node or
// server never goes back to an older list (a replayed list cannot un-revoke anyone).
// File format (JSON): {"list": "<body JSON text>", "signature": "<base64 Ed25519 over the UTF-8 of list>"}
// Body: {"v":1,"trustDomain":..,"issuer":<intermediate fingerprint>,"number":N,"issuedAt":ISO,"serials":[hex]}
import { createHash, sign, verify, type KeyObject } from "node:crypto";
import type { CaMaterial } from "./ca.js";
import { MAX_PEM_BYTES } from "./constants.js";
import { PkiInputError } from "./pem.js";

export const REVOCATION_LIST_VERSION = 1;

export interface RevocationList {
  v: number;
  trustDomain: string;
  issuer: string;
  number: number;
  issuedAt: string;
  serials: string[];
}

export function signRevocationList(ca: CaMaterial, number: number, serials: Iterable<string>, now = new Date()): string {
  const body: RevocationList = {
    v: REVOCATION_LIST_VERSION,
    trustDomain: ca.trustDomain,
    issuer: createHash("sha256").update(ca.intermediateDer).digest("hex"),
    number,
    issuedAt: now.toISOString(),
    serials: [...new Set([...serials].map((s) => s.toLowerCase()))].sort(),
  };
  const list = JSON.stringify(body);
  const signature = sign(null, Buffer.from(list, "utf8"), ca.intermediateKeys.privateKey).toString("base64");
  return JSON.stringify({ list, signature }) + "\n";
}

/** Issuers a list may come from: fingerprint of the CA certificate -> its public key. */
export type ListIssuers = Map<string, KeyObject>;

export function parseRevocationList(text: string, issuers: ListIssuers, trustDomain: string): RevocationList {
  if (text.length > MAX_PEM_BYTES) throw new PkiInputError("revocation list: over the size limit");
  let outer: { list?: unknown; signature?: unknown };
  try { outer = JSON.parse(text); } catch { throw new PkiInputError("revocation list: not JSON"); }
  if (typeof outer?.list !== "string" || typeof outer.signature !== "string") throw new PkiInputError("revocation list: missing list or signature");
  let body: RevocationList;
  try { body = JSON.parse(outer.list); } catch { throw new PkiInputError("revocation list: body is not JSON"); }
  if (body.v !== REVOCATION_LIST_VERSION) throw new PkiInputError(`revocation list: unsupported version ${String(body.v)}`);
  if (body.trustDomain !== trustDomain) throw new PkiInputError(`revocation list: for trust domain "${body.trustDomain}", not "${trustDomain}"`);
  if (!Number.isSafeInteger(body.number) || body.number < 0) throw new PkiInputError("revocation list: bad number");
  if (!Array.isArray(body.serials) || !body.serials.every((s) => typeof s === "string" && /^[0-9a-f]{1,64}$/.test(s))) {
    throw new PkiInputError("revocation list: serials must be lowercase hex strings");
  }
  const key = issuers.get(body.issuer);
  if (!key) throw new PkiInputError("revocation list: signed by a CA that is not in the trust bundle");
  if (!verify(null, Buffer.from(outer.list, "utf8"), key, Buffer.from(outer.signature, "base64"))) {
    throw new PkiInputError("revocation list: bad signature");
  }
  return body;
}

/** The newest accepted list; refuses to move backwards. */
export class RevocationState {
  number = -1;
  private serials = new Set<string>();

  accept(list: RevocationList): { ok: true } | { ok: false; reason: "stale_list"; detail: string } {
    if (list.number <= this.number) {
      return { ok: false, reason: "stale_list", detail: `list number ${list.number} is not newer than the current ${this.number}` };
    }
    this.number = list.number;
    this.serials = new Set(list.serials);
    return { ok: true };
  }

  isRevoked(serial: string): boolean {
    return this.serials.has(serial.toLowerCase());
  }

  get revokedSerials(): string[] {
    return [...this.serials];
  }
}
