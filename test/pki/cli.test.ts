// The `ember ca` and `ember cert` verbs, run as child processes on real files.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statSync, writeFileSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ember, emberJson } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { toPem } from "../../src/pki/index.js";

let tmp: ReturnType<typeof tempDir>;
let caDir: string;
let bundle: string;

beforeAll(() => {
  tmp = tempDir();
  caDir = join(tmp.dir, "ca");
  const out = emberJson(["ca", "init", "--dir", caDir, "--trust-domain", "acme.internal"]);
  bundle = out.bundle;
});
afterAll(() => tmp.cleanup());

describe("ember ca init", () => {
  it("writes private keys 0600 and never prints them", () => {
    for (const f of ["root.key", "intermediate.key"]) expect(statSync(join(caDir, f)).mode & 0o777).toBe(0o600);
    const again = ember(["ca", "init", "--dir", caDir, "--trust-domain", "acme.internal"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/refusing to overwrite/);
    expect(again.stdout + again.stderr).not.toMatch(/PRIVATE KEY/);
  });
  it("rejects a bad trust domain with a clear message", () => {
    const r = ember(["ca", "init", "--dir", join(tmp.dir, "bad"), "--trust-domain", "Not A Domain"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid trust domain/);
  });
});

describe("ember cert", () => {
  it("issue, show --json, verify", () => {
    const prefix = join(tmp.dir, "web-1");
    const issued = emberJson(["cert", "issue", "--ca-dir", caDir, "--name", "web-1", "--tenant", "acme", "--groups", "eng,web", "--ttl", "2h", "--out", prefix]);
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
    const shown = emberJson(["cert", "show", `${prefix}.crt`]);
    expect(shown).toMatchObject({ name: "web-1", tenant: "acme", groups: ["eng", "web"], serial: issued.serial });
    const leftMs = Date.parse(shown.notAfter) - Date.now();
    expect(leftMs).toBeGreaterThan(1.9 * 3_600_000);
    expect(leftMs).toBeLessThanOrEqual(2 * 3_600_000);
    const v = ember(["cert", "verify", `${prefix}.crt`, "--ca", bundle]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^OK spiffe:\/\/acme\.internal\/acme\/web-1/);
    expect(ember(["cert", "verify", `${prefix}.crt`, "--ca", bundle, "--tenant", "globex"]).code).toBe(1);
  });

  it("caps the TTL and refuses bad names", () => {
    const r = ember(["cert", "issue", "--ca-dir", caDir, "--name", "x", "--tenant", "acme", "--ttl", "365d", "--out", join(tmp.dir, "x")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/exceeds the maximum/);
    const bad = ember(["cert", "issue", "--ca-dir", caDir, "--name", "Bad Name", "--tenant", "acme", "--out", join(tmp.dir, "y")]);
    expect(bad.stderr).toMatch(/invalid name/);
  });

  it("issues from a CSR so the key never leaves its owner, and refuses a CSR for another name", () => {
    const p = join(tmp.dir, "db-1");
    expect(ember(["cert", "csr", "--name", "db-1", "--out", p]).code).toBe(0);
    const keyBefore = readFileSync(`${p}.key`, "utf8");
    const issued = emberJson(["cert", "issue", "--ca-dir", caDir, "--name", "db-1", "--tenant", "acme", "--csr", `${p}.csr`, "--out", p]);
    expect(issued.key).toBeUndefined();
    expect(readFileSync(`${p}.key`, "utf8")).toBe(keyBefore);
    expect(ember(["cert", "verify", `${p}.crt`, "--ca", bundle]).code).toBe(0);
    const other = ember(["cert", "issue", "--ca-dir", caDir, "--name", "db-2", "--tenant", "acme", "--csr", `${p}.csr`, "--out", join(tmp.dir, "db-2")]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/CSR asks for "db-1"/);
    // Same-length edit of the signed request body: "db-1" becomes "db-9", so only the signature can tell.
    const der = Buffer.from(readFileSync(`${p}.csr`, "utf8").replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
    const at = der.indexOf(Buffer.from("db-1"));
    expect(at).toBeGreaterThan(0);
    der[at + 3] = "9".charCodeAt(0);
    writeFileSync(join(tmp.dir, "tampered.csr"), toPem(der, "CERTIFICATE REQUEST"));
    const t = ember(["cert", "issue", "--ca-dir", caDir, "--name", "db-9", "--tenant", "acme", "--csr", join(tmp.dir, "tampered.csr"), "--out", join(tmp.dir, "t")]);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/CSR: signature does not verify/);
  });

  it("revocation list: verify --crl rejects a revoked leaf; an older list is refused", () => {
    const p = join(tmp.dir, "rev");
    const issued = emberJson(["cert", "issue", "--ca-dir", caDir, "--name", "rev", "--tenant", "acme", "--out", p]);
    const l1 = join(tmp.dir, "l1.json"), l2 = join(tmp.dir, "l2.json");
    emberJson(["ca", "revoke", "--ca-dir", caDir, "--serial", "abcdef", "--out", l1]);
    expect(ember(["cert", "verify", `${p}.crt`, "--ca", bundle, "--crl", l1]).code).toBe(0);
    emberJson(["ca", "revoke", "--ca-dir", caDir, "--serial", issued.serial, "--out", l2]);
    const v = ember(["cert", "verify", `${p}.crt`, "--ca", bundle, "--crl", l2, "--json"]);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: false, reason: "revoked" });
  });

  it("garbage files get a clear error, never a stack trace", () => {
    const files: [string, Buffer | string][] = [
      ["empty.pem", ""], ["random.pem", randomBytes(4096)],
      ["trunc.pem", "-----BEGIN CERTIFICATE-----\nMIIB"], ["big.pem", Buffer.alloc(10 * 1024 * 1024, 0x41)],
    ];
    for (const [name, data] of files) {
      const f = join(tmp.dir, name);
      writeFileSync(f, data);
      const v = ember(["cert", "verify", f, "--ca", bundle, "--json"]);
      expect(v.code, name).toBe(1);
      expect(JSON.parse(v.stdout)).toMatchObject({ ok: false, reason: "malformed" });
      const s = ember(["cert", "show", f]);
      expect(s.code, name).toBe(2);
      expect(s.stderr).toMatch(/^ember: certificate: /);
      expect(s.stderr).not.toMatch(/\n\s+at /);
    }
    const nob = ember(["cert", "verify", join(tmp.dir, "empty.pem"), "--ca", join(tmp.dir, "random.pem")]);
    expect(nob.code).toBe(2);
    expect(nob.stderr).toMatch(/trust bundle/);
  });
});
