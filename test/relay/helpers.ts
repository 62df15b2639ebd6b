// Relay test fixtures: a CA with relay and node identities on disk, the relay as a real child process
// (its one stdout JSON line gives the bound ports), RelayClients for nodes, and polling helpers.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "node:http";
import { Verifier, withIntermediates, type CaMaterial } from "../../src/pki/index.js";
import { RelayClient, type RelayClientOptions } from "../../src/nat/relay-client.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface IdentityFiles { name: string; certPath: string; keyPath: string; certChainPem: string; keyPem: string; leaf: TestLeaf; serial: string }

export interface Pki {
  dir: string;
  cleanup: () => void;
  ca: CaMaterial;
  bundlePath: string;
  verifier: () => Verifier;
  identity: (name: string, opts?: { roles?: string[]; leaf?: TestLeaf }) => Promise<IdentityFiles>;
}

/** `existing`: the CA of a coordination server the relay must trust too (else a new one). */
export async function makePki(existing?: CaMaterial): Promise<Pki> {
  const { dir, cleanup } = tempDir("ember-relay-");
  const ca = existing ?? await makeCa(dir);
  const bundlePath = join(dir, "bundle.pem");
  writeFileSync(bundlePath, ca.bundlePem);
  return {
    dir, cleanup, ca, bundlePath,
    verifier: () => new Verifier({ bundlePem: ca.bundlePem }),
    identity: async (name, opts = {}) => {
      const leaf = opts.leaf ?? await makeLeaf(ca, name, { roles: opts.roles });
      const certPath = join(dir, `${name}.crt`);
      const keyPath = join(dir, `${name}.key`);
      writeFileSync(certPath, leaf.pem);
      writeFileSync(keyPath, leaf.keyPem, { mode: 0o600 });
      const v = new Verifier({ bundlePem: ca.bundlePem }).verifyPem(leaf.pem);
      return { name, certPath, keyPath, certChainPem: withIntermediates(leaf.pem, ca.bundlePem), keyPem: leaf.keyPem, leaf, serial: v.ok ? v.identity.serial : "" };
    },
  };
}

export interface RelayInfo { name: string; listen: { address: string; port: number }; stun?: { address: string; port: number }; metrics?: { address: string; port: number } }

export interface RelayProc {
  proc: ChildProcess;
  info: RelayInfo;
  stderr: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts the relay (relay/main.ts, or `ember relay` with viaCli) on loopback with free ports. `nofile` runs it
 * under `ulimit -n N` (the shell execs node, so proc.pid is the relay's own PID).
 */
export async function startRelay(pki: Pki, relayId: IdentityFiles, extra: string[] = [], opts: { viaCli?: boolean; nofile?: number } = {}): Promise<RelayProc> {
  const flags = ["--listen", "127.0.0.1:0", "--stun", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
    "--cert", relayId.certPath, "--key", relayId.keyPath, "--ca", pki.bundlePath, ...extra];
  const args = opts.viaCli ? [join(ROOT, "bin", "ember.mjs"), "relay", ...flags] : ["--import", "tsx", join(ROOT, "relay", "main.ts"), ...flags];
  const proc = opts.nofile === undefined
    ? spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    : spawn("/bin/sh", ["-c", `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  proc.stderr!.on("data", (c) => { err += c; });
  const info = await new Promise<RelayInfo>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`relay did not start in 20 s: ${err}`)), 20_000);
    proc.stdout!.on("data", (c) => {
      out += c;
      const nl = out.indexOf("\n");
      if (nl >= 0) { clearTimeout(t); resolve(JSON.parse(out.slice(0, nl))); }
    });
    proc.once("exit", (code) => { clearTimeout(t); reject(new Error(`relay exited ${code}: ${err}`)); });
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  };
  return { proc, info, stderr: () => err, stop };
}

export function nodeClient(pki: Pki, relay: RelayProc, id: IdentityFiles, over: Partial<RelayClientOptions> = {}): RelayClient {
  return new RelayClient({
    host: "127.0.0.1", port: relay.info.listen.port, name: relay.info.name, certChainPem: id.certChainPem, keyPem: id.keyPem,
    bundlePem: pki.ca.bundlePem, verifier: pki.verifier(), backoffMinMs: 100, backoffMaxMs: 1_000, ...over,
  });
}

export async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function connected(c: RelayClient): Promise<void> {
  if (c.connected) return Promise.resolve();
  return waitFor(() => c.connected, "relay client to connect").then(() => undefined);
}

export function relayStatus(relay: RelayProc): Promise<any> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: relay.info.metrics!.port, path: "/status" }, (res) => {
      let body = "";
      res.on("data", (c) => { body += c; });
      res.on("end", () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
    }).on("error", reject).end();
  });
}

/** JSON log lines of the relay's stderr. */
export function logLines(relay: RelayProc): any[] {
  return relay.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => { try { return JSON.parse(l); } catch { return {}; } });
}
