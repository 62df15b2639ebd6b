// `ember ca ...`: create the CA and sign revocation lists with it.
import type { Command } from "commander";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CA_FILES, initCa, loadCa, signRevocationList } from "../pki/index.js";
import { printFields, printJson, splitList, CliError } from "./output.js";

interface CaMeta { trustDomain: string; revocationNumber: number; revoked?: string[] }

export function registerCa(program: Command): void {
  const ca = program.command("ca").description("certificate authority: root + cluster intermediate");
  ca.command("init")
    .description("create an offline root CA and a cluster intermediate CA")
    .requiredOption("--dir <dir>", "directory for the CA files (keys are written 0600)")
    .requiredOption("--trust-domain <td>", "trust domain, e.g. acme.internal")
    .option("--json", "machine-readable output")
    .action(async (o: { dir: string; trustDomain: string; json?: boolean }) => {
      const m = await initCa(o.dir, o.trustDomain);
      const out = {
        trustDomain: m.trustDomain, dir: m.dir,
        bundle: join(m.dir, CA_FILES.bundle), root: join(m.dir, CA_FILES.rootCert), intermediate: join(m.dir, CA_FILES.intermediateCert),
      };
      if (o.json) return printJson(out);
      printFields([["trust domain", out.trustDomain], ["trust bundle", out.bundle], ["root", out.root], ["intermediate", out.intermediate]]);
      process.stdout.write(`Move ${join(m.dir, CA_FILES.rootKey)} offline: it is needed only to renew the intermediate.\n`);
    });
  ca.command("revoke")
    .description("add serial numbers to the CA's signed revocation list and write the new list")
    .requiredOption("--ca-dir <dir>", "CA directory")
    .requiredOption("--serial <serials>", "comma-separated hex serial numbers")
    .requiredOption("--out <file>", "where to write the signed list")
    .option("--json", "machine-readable output")
    .action((o: { caDir: string; serial: string; out: string; json?: boolean }) => {
      const material = loadCa(o.caDir);
      const metaPath = join(o.caDir, CA_FILES.meta);
      const meta = JSON.parse(readFileSync(metaPath, "utf8")) as CaMeta;
      const serials = splitList(o.serial).map((s) => s.toLowerCase().replace(/:/g, ""));
      for (const s of serials) if (!/^[0-9a-f]{1,64}$/.test(s)) throw new CliError(`"${s}" is not a hex serial number`);
      const revoked = [...new Set([...(meta.revoked ?? []), ...serials])];
      const number = meta.revocationNumber + 1;
      writeFileSync(o.out, signRevocationList(material, number, revoked));
      writeFileSync(metaPath, JSON.stringify({ ...meta, revocationNumber: number, revoked }, null, 2) + "\n");
      if (o.json) return printJson({ number, revoked, out: o.out });
      printFields([["list number", number], ["revoked", revoked.join(", ")], ["written to", o.out]]);
    });
}
