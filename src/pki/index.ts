// Public surface of the PKI: what other parts of EmberNet import.
export * from "./constants.js";
export { initCa, loadCa, createCaChain, CA_FILES, type CaMaterial } from "./ca.js";
export { issueLeaf, issueLeafRecord, parseDuration, checkTtl, type LeafRequest, type IssuedLeaf } from "./issue.js";
export { createCsr, verifyCsr, type VerifiedCsr } from "./csr.js";
export { Verifier, type VerifyResult, type VerifyOptions, type RejectReason } from "./verify.js";
export { RevocationState, signRevocationList, type RevocationList } from "./revocation.js";
export { parseCertificate, type ParsedCertificate } from "./certificate.js";
export { generateEd25519, keyPairFromPrivatePem, privateKeyToPem, rawPublicKey, writePrivateFile, type Ed25519KeyPair } from "./keys.js";
export { pemBlocks, toPem, readBoundedFile, PkiInputError } from "./pem.js";
export { isAdmin, spiffeId, parseSpiffeId, type Identity } from "./identity.js";
export type { Grants } from "./grants.js";
export { loadTlsCredentials, tlsContextOptions, verifyTlsPeer, withIntermediates, type TlsCredentials } from "./tls.js";
export {
  issueUserCert, parseUserSpiffeId, userSpiffeId, USER_CERT_DEFAULT_TTL_MS, USER_CERT_MAX_TTL_MS, type UserCertRequest, type UserIdentity,
} from "./user-cert.js";
export type { UserVerifyResult } from "./verify.js";
