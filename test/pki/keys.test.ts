// Ed25519 key generation from a random seed: the public half node derives must be RFC 8032's.
import { describe, expect, it } from "vitest";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateEd25519, keyPairFromPrivatePem, privateKeyToPem, publicKeyFromSpki, rawPublicKey, spkiDer } from "../../src/pki/keys.js";

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

describe("spkiDer and publicKeyFromSpki", () => {
  it("give node's own SPKI encoding and key for Ed25519, and fall back to DER for other keys", () => {
    for (let i = 0; i < 10; i++) {
      const { publicKey } = generateEd25519();
      const der = publicKey.export({ type: "spki", format: "der" });
      expect(spkiDer(publicKey).equals(der)).toBe(true);
      expect(spkiDer(publicKey).subarray(12).equals(Buffer.from(rawPublicKey(publicKey)))).toBe(true);
      expect(publicKeyFromSpki(der).equals(publicKey)).toBe(true);
    }
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    const ecDer = ec.export({ type: "spki", format: "der" });
    expect(spkiDer(ec).equals(ecDer)).toBe(true);
    expect(publicKeyFromSpki(ecDer).asymmetricKeyType).toBe("ec");
    expect(() => publicKeyFromSpki(Buffer.from("302a300506032b65700321", "hex"))).toThrow();
  });
});
