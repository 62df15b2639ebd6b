// One stream's outgoing bytes, from the lowest unacknowledged offset to the end of what the application
// wrote. The application's buffers are held by reference (no copy) until every byte of them is
// acknowledged; lost ranges are resent from them, cut to whatever fits the packet at that moment.
import { RangeSet } from "./ranges.js";

export class SendBuffer {
  /** End offset of everything the application wrote. */
  written = 0;
  /** Highest offset sent at least once (new data starts here). */
  sent = 0;
  /** Every byte below this is acknowledged (and released). */
  acked = 0;
  /** The application ended its side: the final size is `written`. */
  finWritten = false;
  finSent = false;
  finAcked = false;
  /** The packet carrying FIN was lost and FIN must go again. */
  finLost = false;
  /** Acknowledged ranges above `acked`, and sent ranges to send again. */
  private readonly ackedRanges = new RangeSet();
  readonly lost = new RangeSet();
  private readonly chunks: Uint8Array[] = [];
  private head = 0;
  /** Stream offset of chunks[head][0]. */
  private headOffset = 0;
  /** Cursor for copying new data: chunk index and its stream offset. */
  private cursor = 0;
  private cursorOffset = 0;

  /** Bytes held: written but not yet acknowledged. */
  get buffered(): number {
    return this.written - this.acked;
  }

  get hasNewData(): boolean {
    return this.sent < this.written || (this.finWritten && !this.finSent);
  }

  get hasLost(): boolean {
    return !this.lost.isEmpty || this.finLost;
  }

  /** Everything, FIN included, is acknowledged. */
  get allAcked(): boolean {
    return this.finAcked && this.acked === this.written;
  }

  write(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.written += chunk.length;
  }

  end(): void {
    this.finWritten = true;
  }

  /** Copies [offset, offset + len) into dst at dstOff. */
  copy(dst: Uint8Array, dstOff: number, offset: number, len: number): void {
    if (len === 0) return;
    const chunks = this.chunks;
    let i = this.head;
    let chunkOffset = this.headOffset;
    if (offset >= this.cursorOffset && this.cursor < chunks.length) {
      i = this.cursor;
      chunkOffset = this.cursorOffset;
    }
    while (chunkOffset + chunks[i].length <= offset) chunkOffset += chunks[i++].length;
    // Remember where new data continues, so bulk sending never rescans the chunk list.
    if (offset >= this.cursorOffset) {
      this.cursor = i;
      this.cursorOffset = chunkOffset;
    }
    while (len > 0) {
      const c = chunks[i];
      const from = offset - chunkOffset;
      const n = Math.min(len, c.length - from);
      dst.set(from === 0 && n === c.length ? c : c.subarray(from, from + n), dstOff);
      dstOff += n;
      offset += n;
      len -= n;
      chunkOffset += c.length;
      i++;
    }
  }

  /** Records that [offset, offset + len) went out for the first time. */
  onSentNew(len: number, fin: boolean): void {
    this.sent += len;
    if (fin) this.finSent = true;
  }

  /** A retransmission of [offset, offset + len) went out. */
  onResent(offset: number, len: number, fin: boolean): void {
    this.lost.remove(offset, offset + len);
    if (fin) this.finLost = false;
  }

  /** Returns the number of bytes released (so the stream can let the application write more). */
  onAcked(offset: number, len: number, fin: boolean): number {
    if (fin) {
      this.finAcked = true;
      this.finLost = false;
    }
    const end = offset + len;
    if (end <= this.acked) return 0;
    this.lost.remove(offset, end);
    if (offset > this.acked) {
      this.ackedRanges.add(offset, end);
      return 0;
    }
    let newAcked = end;
    if (!this.ackedRanges.isEmpty && this.ackedRanges.firstStart <= newAcked) {
      newAcked = Math.max(newAcked, this.ackedRanges.firstEnd);
      this.ackedRanges.removeBelow(newAcked);
    }
    const released = newAcked - this.acked;
    this.acked = newAcked;
    this.release();
    return released;
  }

  onLost(offset: number, len: number, fin: boolean): void {
    if (fin && !this.finAcked) this.finLost = true;
    const start = Math.max(offset, this.acked);
    const end = offset + len;
    if (end <= start) return;
    this.lost.add(start, end);
    if (!this.ackedRanges.isEmpty) this.subtractAcked();
  }

  /** The link refused the packet: undo a first send of the tail, or resend what was a retransmission. */
  unsend(offset: number, len: number, fin: boolean): void {
    if (offset + len === this.sent && offset >= this.acked && !this.lost.covers(offset, offset + len)) {
      this.sent = offset;
      if (fin) this.finSent = false;
      return;
    }
    this.onLost(offset, len, fin);
  }

  /**
   * Drops everything (the stream was reset): nothing is sent or resent any more. `sent` stays: it is the
   * final size the RESET announces (bytes written but never sent do not count).
   */
  discard(): void {
    this.chunks.length = 0;
    this.head = this.cursor = 0;
    this.written = this.acked = this.sent;
    this.headOffset = this.cursorOffset = this.sent;
    this.lost.clear();
    this.ackedRanges.clear();
    this.finLost = false;
  }

  private subtractAcked(): void {
    for (const [s, e] of this.ackedRanges.toArray()) this.lost.remove(s, e);
  }

  private release(): void {
    const chunks = this.chunks;
    while (this.head < chunks.length && this.headOffset + chunks[this.head].length <= this.acked) {
      this.headOffset += chunks[this.head].length;
      this.head++;
    }
    if (this.cursor < this.head) {
      this.cursor = this.head;
      this.cursorOffset = this.headOffset;
    }
    // Compact now and then so the array does not grow forever.
    if (this.head > 64 && this.head * 2 > chunks.length) {
      chunks.splice(0, this.head);
      this.cursor -= this.head;
      this.head = 0;
    }
  }
}
