// Console passwords: scrypt (node:crypto) with a random 16-byte salt, N=2^15, r=8, p=1 (OWASP's minimum
// for scrypt), stored as "scrypt$N$r$p$salt$hash". About 50-100 ms of CPU per check on the dev VM, so
// logins are also rate-limited (src/coord/console.ts).
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

const N = 2 ** 15, R = 8, P = 1, KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;
export const MIN_PASSWORD_CHARS = 12;
export const MAX_PASSWORD_CHARS = 1024;
export const USERNAME_PATTERN = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password.normalize("NFC"), salt, KEYLEN, { N: n, r, p, maxmem: MAXMEM }, (err, key) => err ? reject(err) : resolve(key)));
}

/** Why this password may not be used, or undefined. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_CHARS) return `a password needs at least ${MIN_PASSWORD_CHARS} characters`;
  if (password.length > MAX_PASSWORD_CHARS) return `a password has at most ${MAX_PASSWORD_CHARS} characters`;
  return undefined;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

export async function checkPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m || password.length > MAX_PASSWORD_CHARS) return false;
  const want = Buffer.from(m[5], "base64url");
  const got = await derive(password, Buffer.from(m[4], "base64url"), Number(m[1]), Number(m[2]), Number(m[3]));
  return got.length === want.length && timingSafeEqual(got, want);
}

let dummy: Promise<string> | undefined;
/** A hash of a random password: checked against when the user does not exist, so both cases cost the same. */
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword(randomBytes(24).toString("base64url")));
}
