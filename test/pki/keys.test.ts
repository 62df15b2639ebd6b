// Ed25519 key generation from a random seed: the public half node derives must be RFC 8032's.
import { describe, expect, it } from "vitest";
import { sign, verify } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateEd25519, keyPairFromPrivatePem, privateKeyToPem, rawPublicKey } from "../../src/pki/keys.js";

describe("generateEd25519", () => {
  it("derives the public key @noble/curves derives from the same seed, signs, and survives PEM", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const pair = generateEd25519();
      expect(pair.privateKey.asymmetricKeyType).toBe("ed25519");
      const seed = Buffer.from(pair.privateKey.export({ format: "jwk" }).d!, "base64url");
      expect(Buffer.from(rawPublicKey(pair.publicKey)).equals(Buffer.from(ed25519.getPublicKey(seed)))).toBe(true);
      const msg = Buffer.from(`message ${i}`);
      const sig = sign(null, msg, pair.privateKey);
      expect(ed25519.verify(sig, msg, rawPublicKey(pair.publicKey))).toBe(true);
      const again = keyPairFromPrivatePem(privateKeyToPem(pair.privateKey));
      expect(verify(null, msg, again.publicKey, sig)).toBe(true);
      seen.add(seed.toString("hex"));
    }
    expect(seen.size).toBe(20);
  });
});
