// `ember cert ...`: issue, inspect and verify identity certificates.
import type { Command } from "commander";
import { writeFileSync } from "node:fs";
import {
  createCsr, generateEd25519, issueLeaf, loadCa, parseCertificate, parseDuration, pemBlocks, privateKeyToPem,
  readBoundedFile, toPem, Verifier, verifyCsr, writePrivateFile, parseSpiffeId, LEAF_DEFAULT_TTL_MS,
} from "../pki/index.js";
import { CliError, humanDuration, printFields, printJson, splitList } from "./output.js";

export function registerCert(program: Command): void {
  const cert = program.command("cert").description("identity certificates");

  cert.command("issue")
    .description("issue a short-lived leaf certificate (new key, or from a CSR so the key never leaves its owner)")
    .requiredOption("--ca-dir <dir>", "CA directory (from ember ca init)")
    .requiredOption("--name <name>", "identity name")
    .requiredOption("--tenant <tenant>", "tenant")
    .option("--groups <groups>", "comma-separated groups", "")
    .option("--roles <roles>", "comma-separated roles (admin grants the coordination admin API)", "")
    .option("--admin", "shorthand for --roles admin")
    .option("--ttl <duration>", "lifetime, e.g. 30m, 8h", `${LEAF_DEFAULT_TTL_MS / 3_600_000}h`)
    .option("--csr <file>", "issue for the key in this CSR instead of generating one")
    .requiredOption("--out <prefix>", "writes PREFIX.crt (and PREFIX.key when no CSR is given)")
    .option("--json", "machine-readable output")
    .action(async (o: { caDir: string; name: string; tenant: string; groups: string; roles: string; admin?: boolean; ttl: string; csr?: string; out: string; json?: boolean }) => {
      const ca = loadCa(o.caDir);
      let publicKey;
      let keyFile: string | undefined;
      if (o.csr) {
        const csr = await verifyCsr(readBoundedFile(o.csr, "CSR"));
        if (csr.commonName !== undefined && csr.commonName !== o.name) throw new CliError(`CSR asks for "${csr.commonName}", not "${o.name}"`);
        publicKey = csr.publicKey;
      } else {
        const keys = generateEd25519();
        publicKey = keys.publicKey;
        keyFile = `${o.out}.key`;
        writePrivateFile(keyFile, privateKeyToPem(keys.privateKey));
      }
      const roles = [...splitList(o.roles), ...(o.admin ? ["admin"] : [])];
      const der = await issueLeaf(ca, { name: o.name, tenant: o.tenant, groups: splitList(o.groups), roles, ttlMs: parseDuration(o.ttl), publicKey });
      const certFile = `${o.out}.crt`;
      writeFileSync(certFile, toPem(der, "CERTIFICATE"));
      const info = describe(der);
      if (o.json) return printJson({ ...info, certificate: certFile, key: keyFile });
      printFields([["identity", info.spiffeId], ["serial", info.serial], ["expires", `${info.notAfter} (in ${info.timeLeft})`], ["certificate", certFile], ["key", keyFile]]);
    });

  cert.command("csr")
    .description("generate a key and a certificate signing request (the key stays here)")
    .requiredOption("--name <name>", "identity name to request")
    .requiredOption("--out <prefix>", "writes PREFIX.key (0600) and PREFIX.csr")
    .action(async (o: { name: string; out: string }) => {
      const keys = generateEd25519();
      writePrivateFile(`${o.out}.key`, privateKeyToPem(keys.privateKey));
      writeFileSync(`${o.out}.csr`, await createCsr(keys, o.name));
      process.stdout.write(`${o.out}.key\n${o.out}.csr\n`);
    });

  cert.command("show")
    .description("print identity, tenant, groups, serial, validity and time left")
    .argument("<file>", "certificate PEM (leaf first)")
    .option("--json", "machine-readable output")
    .action((file: string, o: { json?: boolean }) => {
      const [der] = pemBlocks(readBoundedFile(file, "certificate"), "CERTIFICATE", "certificate");
      const info = describe(der);
      if (o.json) return printJson(info);
      printFields([
        ["name", info.name], ["identity", info.spiffeId], ["tenant", info.tenant], ["groups", info.groups.join(", ") || "-"],
        ["roles", info.roles.join(", ") || "-"], ["serial", info.serial], ["issuer", info.issuer],
        ["valid from", info.notBefore], ["valid until", info.notAfter], ["time left", info.timeLeft], ["sha256", info.fingerprint],
      ]);
    });

  cert.command("verify")
    .description("verify a leaf against a trust bundle; exit 0 only when valid")
    .argument("<file>", "certificate PEM (leaf first, intermediates may follow)")
    .requiredOption("--ca <bundle>", "trust bundle (root + intermediate PEM)")
    .option("--crl <file>", "signed revocation list")
    .option("--tenant <tenant>", "require this tenant")
    .option("--skew <duration>", "clock-skew allowance", "30s")
    .option("--json", "machine-readable output")
    .action((file: string, o: { ca: string; crl?: string; tenant?: string; skew: string; json?: boolean }) => {
      const verifier = Verifier.fromBundleFile(o.ca, { skewMs: parseDuration(o.skew) });
      if (o.crl) {
        const applied = verifier.applyRevocationList(readBoundedFile(o.crl, "revocation list"));
        if (!applied.ok) throw new CliError(`revocation list ${o.crl}: ${applied.detail}`);
      }
      let text: string;
      try { text = readBoundedFile(file, "certificate"); } catch (err) {
        return report({ ok: false, reason: "malformed", detail: (err as Error).message }, o.json);
      }
      const r = verifier.verifyPem(text, { expectTenant: o.tenant });
      report(r.ok ? { ok: true, identity: r.identity.spiffeId, groups: r.identity.groups, roles: r.identity.roles, notAfter: r.identity.notAfter.toISOString() } : r, o.json);
    });
}

function report(r: { ok: boolean; reason?: string; detail?: string; identity?: string; [k: string]: unknown }, json?: boolean): void {
  if (json) printJson(r);
  else if (r.ok) process.stdout.write(`OK ${r.identity}\n`);
  else process.stdout.write(`REJECTED ${r.reason}: ${r.detail}\n`);
  if (!r.ok) process.exitCode = 1;
}

function describe(der: Uint8Array) {
  const c = parseCertificate(der);
  const grants = c.grants instanceof Error || c.grants === undefined ? undefined : c.grants;
  const sid = c.uris.map(parseSpiffeId).find((x) => x);
  return {
    name: c.commonName, spiffeId: c.uris[0], trustDomain: sid?.trustDomain,
    tenant: grants?.tenant, groups: grants?.groups ?? [], roles: grants?.roles ?? [],
    serial: c.serial, issuer: c.issuer, isCa: c.isCa,
    notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(),
    timeLeft: humanDuration(c.notAfter.getTime() - Date.now()), fingerprint: c.fingerprint,
    grantsError: c.grants instanceof Error ? c.grants.message : undefined,
  };
}
