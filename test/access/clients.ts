// Client helpers for the proxy tests: the curl binary, and raw SOCKS5 bytes.
import { execFile } from "node:child_process";
import type { Socket } from "node:net";

/** Runs the real curl binary with no proxy settings from the environment. */
export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nonexistent" };
  return new Promise((resolve) => {
    execFile("/usr/bin/curl", ["-sS", "--max-time", "10", "-q", ...args], { env, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Reads exactly n bytes (or what arrived before the peer closed). */
export function readN(sock: Socket, n: number, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const finish = () => { clearTimeout(t); sock.off("data", on); sock.off("close", finish); resolve(buf.subarray(0, n)); };
    const on = (c: Buffer) => { buf = Buffer.concat([buf, c]); if (buf.length >= n) finish(); };
    const t = setTimeout(finish, timeoutMs);
    sock.on("data", on);
    sock.once("close", finish);
  });
}

/** A SOCKS5 request with a domain-name destination (ATYP 0x03). */
export function socksRequest(cmd: number, host: string, port: number): Buffer {
  const name = Buffer.from(host, "latin1");
  const b = Buffer.alloc(7 + name.length);
  b.set([5, cmd, 0, 3, name.length], 0);
  name.copy(b, 5);
  b.writeUInt16BE(port, 5 + name.length);
  return b;
}
