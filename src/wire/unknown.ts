// Messages a party does not understand (a newer peer's inner kind, a newer server's map frame, a newer relay's
// frame type, a newer node's telemetry event kind) are skipped, never fatal and never silent: each is counted
// by where it came from and what it was, and logged with the sender's version the first time and then at most
// once a minute per sender and kind. This is the tally; the caller writes the log line it is told to.
export const UNKNOWN_LOG_INTERVAL_MS = 60_000;
/** Distinct (sender, kind) pairs remembered for the log's rate limit: a hostile sender cannot grow it without bound. */
const MAX_TRACKED = 1_024;

export interface UnknownNote {
  /** Messages of this kind from this sender skipped so far. */
  count: number;
  /** Whether to log this one (the first, then once per UNKNOWN_LOG_INTERVAL_MS). */
  log: boolean;
}

export class UnknownTally {
  /** Skipped messages by kind, all senders together (status output, metrics). */
  readonly byKind = new Map<string, number>();
  private readonly perSender = new Map<string, { count: number; loggedAt: number }>();

  constructor(private readonly intervalMs = UNKNOWN_LOG_INTERVAL_MS) {}

  note(sender: string, kind: string, now: number): UnknownNote {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    const key = `${sender}\u0000${kind}`;
    let s = this.perSender.get(key);
    if (!s) {
      if (this.perSender.size >= MAX_TRACKED) this.perSender.delete(this.perSender.keys().next().value!);
      s = { count: 0, loggedAt: -Infinity };
      this.perSender.set(key, s);
    }
    s.count++;
    const log = now - s.loggedAt >= this.intervalMs;
    if (log) s.loggedAt = now;
    return { count: s.count, log };
  }

  get total(): number {
    let n = 0;
    for (const v of this.byKind.values()) n += v;
    return n;
  }
}
