// Passwords on the command line: the first line of stdin (scripts), or asked twice on a terminal without echo.
import { CliError } from "./output.js";

/** Reads a password from stdin (first line), for scripts: `ember admin create alice --password-stdin < file`. */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) { chunks.push(c as Buffer); if (Buffer.concat(chunks).includes(10) || Buffer.concat(chunks).length > 4096) break; }
  return Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0];
}

/** Asks on a terminal without echo (twice when setting a password). */
export async function promptPassword(confirm = true): Promise<string> {
  if (!process.stdin.isTTY) throw new CliError("no terminal to ask for the password: use --password-stdin");
  const ask1 = (q: string) => new Promise<string>((resolve) => {
    process.stderr.write(q);
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    let buf = "";
    const on = (d: Buffer) => {
      for (const ch of d.toString("utf8")) {
        if (ch === "\r" || ch === "\n") { stdin.setRawMode(false); stdin.pause(); stdin.off("data", on); process.stderr.write("\n"); return resolve(buf); }
        if (ch === "\u0003") { stdin.setRawMode(false); process.exit(130); }
        if (ch === "\u007f") buf = buf.slice(0, -1); else buf += ch;
      }
    };
    stdin.on("data", on);
  });
  const a = await ask1("password: ");
  if (!confirm) return a;
  const b = await ask1("again: ");
  if (a !== b) throw new CliError("the two passwords differ");
  return a;
}
