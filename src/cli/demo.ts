// `ember demo`: the main job on the embedded defaults, in a temporary directory, leaving nothing behind.
// It grows with the product: today it walks the PKI (CA, issuance, verification, revocation).
import type { Command } from "commander";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519, initCa, issueLeaf, signRevocationList, Verifier } from "../pki/index.js";
import { printTable } from "./output.js";

export function registerDemo(program: Command): void {
  program.command("demo")
    .description("run a complete local demonstration on the embedded defaults, then clean up")
    .option("--keep", "keep the demo directory")
    .action(async (o: { keep?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), "ember-demo-"));
      try {
        const ca = await initCa(join(dir, "ca"), "demo.embernet");
        process.stdout.write(`CA created for trust domain ${ca.trustDomain} in ${join(dir, "ca")}\n`);
        const verifier = new Verifier({ bundlePem: ca.bundlePem });
        const nodes = [
          { name: "laptop-1", groups: ["engineering-team"] },
          { name: "dashboard-1", groups: ["edge-dashboard"] },
          { name: "db-1", groups: ["databases"] },
        ];
        const rows: string[][] = [];
        const serials: Record<string, string> = {};
        for (const n of nodes) {
          const der = await issueLeaf(ca, { name: n.name, tenant: "demo", groups: n.groups, ttlMs: 3_600_000, publicKey: generateEd25519().publicKey });
          const r = verifier.verifyChain([der]);
          if (r.ok) serials[n.name] = r.identity.serial;
          rows.push([n.name, r.ok ? r.identity.spiffeId : "-", n.groups.join(","), r.ok ? "valid" : `rejected: ${r.reason}`]);
          (n as { der?: Uint8Array }).der = der;
        }
        verifier.applyRevocationList(signRevocationList(ca, 1, [serials["db-1"]]));
        for (const n of nodes) {
          const r = verifier.verifyChain([(n as { der?: Uint8Array }).der!]);
          rows.push([n.name, "(after revoking db-1)", "", r.ok ? "valid" : `rejected: ${r.reason}`]);
        }
        printTable(["NODE", "IDENTITY", "GROUPS", "VERDICT"], rows);
      } finally {
        if (o.keep) process.stdout.write(`kept ${dir}\n`);
        else rmSync(dir, { recursive: true, force: true });
      }
    });
}
