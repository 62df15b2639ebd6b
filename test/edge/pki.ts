// Certificates for the public edge's tests, made with openssl (EC P-256): a public CA and a wildcard leaf for
// *.example.test (what the edge presents), a partner's client CA with one client certificate, and a self-signed
// stranger's certificate that no publication trusts.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

function openssl(args: string[]) { execFileSync("openssl", args, { stdio: "ignore" }); }

/** Writes pub-ca.crt, edge.crt/key, client-ca.crt, client.crt/key and stranger.crt/key under dir. */
export function makeEdgePki(dir: string) {
  const p = (n: string) => join(dir, n);
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=edge test public CA", "-keyout", p("pub-ca.key"), "-out", p("pub-ca.crt"),
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=*.example.test", "-keyout", p("edge.key"), "-out", p("edge.csr")]);
  writeFileSync(p("edge.ext"), "subjectAltName=DNS:*.example.test\nbasicConstraints=CA:FALSE\n");
  openssl(["x509", "-req", "-in", p("edge.csr"), "-CA", p("pub-ca.crt"), "-CAkey", p("pub-ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("edge.ext"), "-out", p("edge.crt")]);
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=partner client CA", "-keyout", p("client-ca.key"), "-out", p("client-ca.crt"),
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=partner-1", "-keyout", p("client.key"), "-out", p("client.csr")]);
  writeFileSync(p("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  openssl(["x509", "-req", "-in", p("client.csr"), "-CA", p("client-ca.crt"), "-CAkey", p("client-ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("client.ext"), "-out", p("client.crt")]);
  // A client certificate from another CA: must be refused.
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=stranger", "-keyout", p("stranger.key"), "-out", p("stranger.crt")]);
}
