// Bounded, strict PEM reading. Certificates and lists are small; anything huge or garbled is refused
// with a message that names the problem instead of reaching a parser.
import { readFileSync, statSync } from "node:fs";
import { MAX_PEM_BYTES } from "./constants.js";

export class PkiInputError extends Error {}

export function readBoundedFile(path: string, what: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new PkiInputError(`${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (size > MAX_PEM_BYTES) throw new PkiInputError(`${what}: ${path} is ${size} bytes, over the ${MAX_PEM_BYTES}-byte limit`);
  if (size === 0) throw new PkiInputError(`${what}: ${path} is empty`);
  return readFileSync(path, "utf8");
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;

/** All PEM blocks of the given label, decoded; throws when there is none or one is damaged. */
export function pemBlocks(text: string, label: string, what: string): Uint8Array[] {
  if (text.length > MAX_PEM_BYTES) throw new PkiInputError(`${what}: input over the ${MAX_PEM_BYTES}-byte limit`);
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] !== label) continue;
    const b64 = m[2].replace(/\s+/g, "");
    const der = Buffer.from(b64, "base64");
    if (der.length === 0 || der.toString("base64").replace(/=+$/, "") !== b64.replace(/=+$/, "")) {
      throw new PkiInputError(`${what}: damaged base64 in a ${label} block`);
    }
    out.push(new Uint8Array(der));
  }
  if (out.length === 0) {
    const begun = text.includes(`-----BEGIN ${label}-----`);
    throw new PkiInputError(begun ? `${what}: truncated ${label} block (no END line)` : `${what}: no ${label} block found`);
  }
  return out;
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/** WebCrypto-typed APIs want ArrayBuffer-backed views; ours always are (never SharedArrayBuffer). */
export function ab(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u as Uint8Array<ArrayBuffer>;
}
