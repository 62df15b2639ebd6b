// @peculiar/x509 (with reflect-metadata and its ASN.1 schema libraries) is loaded on first use, not at import: it
// is 11 MB resident, and a node daemon never needs it (certificates are parsed and CSRs built by hand, src/pki/der.ts);
// building certificates (CA init, the console's web certificate) does. Loaded once, with its WebCrypto provider set.
import { createRequire } from "node:module";
import { webcrypto } from "node:crypto";

export type X509 = typeof import("@peculiar/x509");

let loaded: X509 | undefined;

/** The @peculiar/x509 module, loaded now if it was not yet. */
export function x509(): X509 {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    require("reflect-metadata");
    loaded = require("@peculiar/x509") as X509;
    loaded.cryptoProvider.set(webcrypto as unknown as Crypto);
  }
  return loaded;
}

export const ED25519 = { name: "Ed25519" } as const;
