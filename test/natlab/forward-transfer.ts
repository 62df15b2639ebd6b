// Bulk transfers through `ember forward` in the NAT lab: a forward on one node to a sink service on another,
// the lab's transfer tool sending a deterministic stream into it and comparing sha256 on both ends. A stall
// or failure carries what both daemons knew (EmberLab.diagnosed).
import type { Host } from "./lab.js";
import type { EmberLab, LabNode } from "./ember-mesh.js";
import { startTool, type ToolProc } from "./tools.js";

export interface TransferResult { bytes: number; sha256: string; remoteSha256: string; remoteBytes: number; ms: number; mbps: number }

/** Resolves once the sender has written at least that many bytes (or finished). */
export type Progress = (bytes: number) => Promise<void>;

export interface TransferOptions {
  /** The service the forward reaches, e.g. "sink.srv". */
  target: string;
  bytes: number;
  /** Whose state a failure shows (the sender's node is always included). */
  peers: LabNode[];
  /** Runs alongside the transfer; its string becomes the note. */
  during?: (progress: Progress) => Promise<string>;
  /** No progress line for this long fails the transfer. */
  stallMs?: number;
}

/**
 * Follows a running `transfer.ts send` (started with --progress): resolves with its result line once `during`
 * (given the progress so far) has finished too. A failure line, or no line for stallMs, rejects.
 */
export async function followSend(t: ToolProc, stallMs: number, during?: (progress: Progress) => Promise<string>): Promise<{ r: TransferResult; note: string }> {
  let sent = 0;
  const waiters: { at: number; resolve: () => void }[] = [];
  let result: TransferResult | undefined;
  const reader = (async () => {
    for (;;) {
      const line = await t.nextJson<any>(stallMs);
      if (line.progress !== undefined) {
        sent = line.progress;
        for (const w of [...waiters]) if (sent >= w.at) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
        continue;
      }
      if (line.error) throw new Error(`transfer failed after ${line.bytes} bytes: ${line.error}`);
      result = line;
      for (const w of waiters) w.resolve();
      return;
    }
  })();
  const progress: Progress = (bytes) => new Promise<void>((resolve) => { if (sent >= bytes || result) resolve(); else waiters.push({ at: bytes, resolve }); });
  const [, note] = await Promise.all([reader, during ? during(progress) : Promise.resolve("")]);
  return { r: result!, note };
}

/** Starts a forward on `from` (whose namespace is `host`) to opts.target and sends opts.bytes through it. */
export async function transferThroughForward(m: EmberLab, from: LabNode, host: Host, opts: TransferOptions): Promise<{ r: TransferResult; note: string }> {
  const f = await m.request<{ listen: string }>(from, "forward", { listenPort: 0, host: opts.target, protocol: "tcp" });
  const port = Number(f.listen.split(":").pop());
  try {
    const t = startTool(m.lab, host, "transfer", ["send", "--port", String(port), "--bytes", String(opts.bytes), "--progress", "1"]);
    return await m.diagnosed([from, ...opts.peers], () => followSend(t, opts.stallMs ?? 300_000, opts.during));
  } finally {
    await m.request(from, "unforward", { listenPort: port }).catch(() => undefined);
  }
}

/** Both ends saw exactly the bytes sent, with the same hash. */
export function byteExact(r: TransferResult, bytes: number): boolean {
  return r.bytes === bytes && r.remoteBytes === bytes && r.sha256 === r.remoteSha256;
}
