// Issue 14, item 3: one size limit for a policy, the size of its source text. The CLI checks it before
// sending, the server checks the same number with the same message, and the JSON body limit is derived
// from it so that every policy within the limit fits after JSON escaping (a 999,990-byte file used to pass
// the CLI and get 413 from the server).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { join } from "node:path";
import { MAX_POLICY_BYTES, policySizeProblem } from "../../src/policy/index.js";
import { MAX_POLICY_BODY_BYTES } from "../../src/coord/protocol.js";
import { RequestError } from "../../src/pki/mtls-client.js";
import { ember } from "../helpers/cli.js";
import { adminEnv, makeMesh, portOf, spawnCoord, type CoordProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let coord: CoordProcess;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh);
  env = adminEnv(mesh, coord);
}, 60_000);

afterAll(async () => {
  await coord?.kill9();
  mesh?.cleanup();
});

/** A valid policy of exactly `bytes` bytes, padded with comment lines of quotes and backslashes (2 bytes each in JSON). */
function paddedPolicy(bytes: number): string {
  const head = 'version: 1\ngroups: [eng, web]\nrules:\n  - allow: {source: "@eng", target: "@web", protocol: https}\n';
  const line = `# ${'"\\'.repeat(49)}\n`; // 101 bytes of text, 199 as JSON
  let text = head + line.repeat(Math.floor((bytes - head.length) / line.length));
  text += "#".repeat(bytes - Buffer.byteLength(text) - 1) + "\n";
  expect(Buffer.byteLength(text)).toBe(bytes);
  return text;
}

describe("policy size limit (issue 14.3)", () => {
  it("derives the body limit from the source limit so that the worst-case JSON escaping fits", () => {
    // \u0001 is 1 byte of source and 6 bytes of JSON; the envelope {"source":"..."} adds a few more.
    expect(MAX_POLICY_BODY_BYTES).toBeGreaterThanOrEqual(JSON.stringify({ source: "\u0001".repeat(MAX_POLICY_BYTES) }).length);
  });

  it("applies a valid 999,990-byte policy whose JSON body is far over 1 MiB", () => {
    const file = join(mesh.dir, "big.yaml");
    const text = paddedPolicy(999_990);
    expect(JSON.stringify({ source: text }).length).toBeGreaterThan(1024 * 1024);
    writeFileSync(file, text);
    const r = ember(["policy", "set", file], { env, timeoutMs: 60_000 });
    expect(r.stderr).not.toMatch(/413|body_too_large/);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^policy applied: 1 rule\(s\)/);
  }, 60_000);

  it("refuses a policy one byte over the limit in the CLI, with the server's own message", async () => {
    const file = join(mesh.dir, "over.yaml");
    const text = paddedPolicy(MAX_POLICY_BYTES + 1);
    writeFileSync(file, text);
    const message = policySizeProblem(MAX_POLICY_BYTES + 1)!;
    expect(message).toBe(`policy is ${MAX_POLICY_BYTES + 1} bytes; the limit is ${MAX_POLICY_BYTES} bytes`);
    const r = ember(["policy", "set", file], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ember: ${file}: ${message}\n`);
    // The same text sent past the CLI: the server refuses it by the same rule and message, not with 413.
    const err = await mesh.admin().setPolicy(text).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).status).toBe(422);
    expect((err as RequestError).body.errors[0].message).toBe(message);
  }, 60_000);

  it("a policy at the limit with the worst JSON escaping reaches the policy checker instead of a 413", async () => {
    const text = `# ${"\u0001".repeat(MAX_POLICY_BYTES - 3)}\n`;
    expect(Buffer.byteLength(text)).toBe(MAX_POLICY_BYTES);
    const err = await mesh.admin().setPolicy(text).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).status).toBe(422);
    expect((err as RequestError).code).toBe("policy_invalid");
  }, 60_000);

  it("a body larger than any allowed policy needs is 413 naming the policy limit", async () => {
    // Declared length only: the server answers from the header, before the body would arrive.
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: portOf(coord.url), rejectUnauthorized: false,
        cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) });
      let data = "";
      s.on("secureConnect", () => s.write(`PUT /v1/admin/policy HTTP/1.1\r\nHost: coord\r\nContent-Type: application/json\r\nContent-Length: ${MAX_POLICY_BODY_BYTES + 1}\r\n\r\n`));
      s.on("data", (c) => { data += c; });
      s.on("error", reject);
      s.on("close", () => resolve(data));
      s.setTimeout(10_000, () => s.destroy(new Error("no answer")));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
    expect(body.error).toBe("body_too_large");
    expect(body.detail).toMatch(new RegExp(`a policy is at most ${MAX_POLICY_BYTES} bytes`));
  }, 60_000);
});
