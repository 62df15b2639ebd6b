// Loads this node's certificate, key and trust bundle, and derives what the handshake needs.
import { readBoundedFile, pemBlocks, keyPairFromPrivatePem, Verifier, type Identity } from "../pki/index.js";
import { generateStaticKeyPair, type LocalIdentity } from "../session/crypto-adapter.js";
import { RELEASE } from "../release.js";

export interface NodeCredentials {
  identity: Identity;
  local: LocalIdentity;
  certPem: string;
  keyPem: string;
  bundlePem: string;
}

/** Reads and verifies our own certificate: a node refuses to start on an identity its peers would refuse. */
export function loadCredentials(certPath: string, keyPath: string, verifier: Verifier, bundlePem: string, staticKeys = generateStaticKeyPair()): NodeCredentials {
  const certPem = readBoundedFile(certPath, "certificate");
  const keyPem = readBoundedFile(keyPath, "private key");
  const chain = pemBlocks(certPem, "CERTIFICATE", "certificate");
  const bundleDers = pemBlocks(bundlePem, "CERTIFICATE", "trust bundle");
  const r = verifier.verifyChain(chain);
  if (!r.ok) throw new Error(`own certificate ${certPath} is not valid: ${r.reason}: ${r.detail}`);
  const keys = keyPairFromPrivatePem(keyPem, `private key ${keyPath}`);
  const certKey = Buffer.from(r.identity.publicKey);
  const spki = keys.publicKey.export({ type: "spki", format: "der" });
  if (!Buffer.from(spki.subarray(spki.length - 32)).equals(certKey)) throw new Error(`private key ${keyPath} does not belong to certificate ${certPath}`);
  // Present the intermediate(s) from the bundle after the leaf so peers can build the chain.
  const intermediates = bundleDers.slice(1);
  return {
    identity: r.identity, certPem, keyPem, bundlePem,
    local: { certChainDer: [chain[0], ...intermediates], certPrivateKey: keys.privateKey, ...staticKeys, software: RELEASE.version },
  };
}
