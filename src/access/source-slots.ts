// Fairness between the proxy's clients: connections per source (sourceKey(): an IPv4 address, an IPv6 /64), so
// that one local program, or anyone who can reach a listener opened with --allow-non-loopback, cannot take every
// slot. Two caps: all open connections of a source, and those of a source still in their handshake (which
// cost nothing to open and hold). Pure bookkeeping: the listener asks and acts.
import { sourceKey } from "../addr/source-key.js";

export type SlotRefusal = "source_limit" | "source_handshakes";

export class SourceSlots {
  private readonly bySource = new Map<string, { open: number; handshaking: number }>();

  constructor(private readonly maxPerSource: number, private readonly maxHandshakesPerSource: number) {}

  /** A new connection from `address`; on ok the caller calls handshakeDone() once and release() at close. */
  admit(address: string | undefined): { ok: true; source: string } | { ok: false; reason: SlotRefusal } {
    const source = sourceKey(address);
    const s = this.bySource.get(source) ?? { open: 0, handshaking: 0 };
    if (s.open >= this.maxPerSource) return { ok: false, reason: "source_limit" };
    if (s.handshaking >= this.maxHandshakesPerSource) return { ok: false, reason: "source_handshakes" };
    s.open++;
    s.handshaking++;
    this.bySource.set(source, s);
    return { ok: true, source };
  }

  handshakeDone(source: string): void {
    const s = this.bySource.get(source);
    if (s && s.handshaking > 0) s.handshaking--;
  }

  /** The connection closed; `handshaking`: it closed before handshakeDone(). */
  release(source: string, handshaking: boolean): void {
    const s = this.bySource.get(source);
    if (!s) return;
    s.open--;
    if (handshaking && s.handshaking > 0) s.handshaking--;
    if (s.open <= 0) this.bySource.delete(source);
  }
}
