// A node's credential files in its state directory, replaced crash-safely: new files are written as *.next
// and fsynced, then renamed into place (key first, then certificate). If a crash splits the two renames,
// recoverState() finishes the job on the next start, so key.pem and cert.pem always belong together.
import { createPublicKey, X509Certificate } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";
import { FILE_MODE_PRIVATE } from "../pki/index.js";

export const STATE_FILES = { key: "key.pem", cert: "cert.pem", bundle: "bundle.pem", revocation: "revocation.json" } as const;

export interface NodeCredentials { keyPem: string; certPem: string; bundlePem: string; revocation?: string }

function writeDurable(path: string, data: string, mode = 0o644): void {
  const fd = openSync(path, "w", mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally { closeSync(fd); }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* not every filesystem lets a directory be fsynced */ }
}

/** Writes a file atomically (tmp + fsync + rename). */
export function writeAtomic(dir: string, name: string, data: string, mode = 0o644): void {
  const tmp = join(dir, `${name}.tmp`);
  writeDurable(tmp, data, mode);
  renameSync(tmp, join(dir, name));
  fsyncDir(dir);
}

export function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    const pub = createPublicKey(keyPem).export({ type: "spki", format: "der" });
    const cert = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
    return Buffer.compare(pub, cert) === 0;
  } catch { return false; }
}

/** Installs a new key + certificate pair (renewal or first enrollment). */
export function installCredentials(dir: string, keyPem: string, certPem: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyNext = join(dir, `${STATE_FILES.key}.next`);
  const certNext = join(dir, `${STATE_FILES.cert}.next`);
  writeDurable(keyNext, keyPem, FILE_MODE_PRIVATE);
  writeDurable(certNext, certPem, FILE_MODE_PRIVATE);
  renameSync(keyNext, join(dir, STATE_FILES.key));
  renameSync(certNext, join(dir, STATE_FILES.cert));
  fsyncDir(dir);
}

async function writeDurableAsync(path: string, data: string, mode: number): Promise<void> {
  const fh = await open(path, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally { await fh.close(); }
}

/**
 * A first enrollment's files (bundle, revocation list, key, certificate), on the thread pool: all four are
 * written and fsynced side by side, then renamed into place (key before certificate, as installCredentials)
 * with one directory fsync. installCredentials and writeAtomic one after the other held the event loop for
 * 4 file and 3 directory fsyncs (about 30 ms on the dev machine's disk), which bounded a process enrolling
 * many nodes (the coordination benchmark) to about 30 a second.
 */
export async function installEnrollment(dir: string, files: { bundlePem: string; revocation?: string; keyPem: string; certPem: string }): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const writes: [string, string, string, number][] = [
    [`${STATE_FILES.bundle}.tmp`, STATE_FILES.bundle, files.bundlePem, 0o644],
    ...(files.revocation !== undefined ? [[`${STATE_FILES.revocation}.tmp`, STATE_FILES.revocation, files.revocation, 0o644] as [string, string, string, number]] : []),
    [`${STATE_FILES.key}.next`, STATE_FILES.key, files.keyPem, FILE_MODE_PRIVATE],
    [`${STATE_FILES.cert}.next`, STATE_FILES.cert, files.certPem, FILE_MODE_PRIVATE],
  ];
  await Promise.all(writes.map(([tmp, , data, mode]) => writeDurableAsync(join(dir, tmp), data, mode)));
  for (const [tmp, final] of writes) await rename(join(dir, tmp), join(dir, final));
  try {
    const fh = await open(dir, "r");
    try { await fh.sync(); } finally { await fh.close(); }
  } catch { /* not every filesystem lets a directory be fsynced */ }
}

/** Completes or discards a credential replacement a crash interrupted. */
export function recoverState(dir: string): void {
  const keyNext = join(dir, `${STATE_FILES.key}.next`);
  const certNext = join(dir, `${STATE_FILES.cert}.next`);
  const read = (p: string) => { try { return readFileSync(p, "utf8"); } catch { return undefined; } };
  if (existsSync(certNext)) {
    const cert = read(certNext);
    const key = existsSync(keyNext) ? read(keyNext) : read(join(dir, STATE_FILES.key));
    if (cert && key && keyMatchesCert(key, cert)) {
      if (existsSync(keyNext)) renameSync(keyNext, join(dir, STATE_FILES.key));
      renameSync(certNext, join(dir, STATE_FILES.cert));
      fsyncDir(dir);
      return;
    }
    unlinkSync(certNext);
  }
  if (existsSync(keyNext)) unlinkSync(keyNext);
}

export function readCredentials(dir: string): NodeCredentials {
  recoverState(dir);
  const read = (name: string, what: string) => {
    try { return readFileSync(join(dir, name), "utf8"); } catch (err) {
      throw new Error(`${what}: cannot read ${join(dir, name)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); enroll first`);
    }
  };
  const creds: NodeCredentials = { keyPem: read(STATE_FILES.key, "node key"), certPem: read(STATE_FILES.cert, "node certificate"), bundlePem: read(STATE_FILES.bundle, "trust bundle") };
  if (existsSync(join(dir, STATE_FILES.revocation))) creds.revocation = read(STATE_FILES.revocation, "revocation list");
  return creds;
}
