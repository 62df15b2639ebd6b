// @peculiar/x509 needs reflect-metadata loaded once and a WebCrypto provider; every PKI module imports
// x509 through here so that happens exactly once, before first use.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const ED25519 = { name: "Ed25519" } as const;
