// One stream's incoming bytes: data in order waiting for the application to read it, and data that
// arrived ahead of a gap. Arriving data is a view into the datagram, so what we keep is copied (once);
// duplicates and overlaps are trimmed first, so a byte is stored at most once. The stream checks flow
// control before calling insert(), so this never holds more than the window.
//
// In-order data is copied into slabs and handed to the reader as one view per slab region, not one small
// buffer per packet: a bulk reader gets up to 64 KiB chunks, and node:stream does far less work. Slabs
// start small and double, so a stream that carries a few bytes does not hold 64 KiB.

interface Segment {
  offset: number;
  data: Buffer;
}

export class RecvBuffer {
  /** Every byte below this has been handed to the application (taken). */
  taken = 0;
  /** In-order bytes ready for the application, from `taken`: whole buffers, then the open slab region. */
  private readonly ready: Buffer[] = [];
  private readyHead = 0;
  readyBytes = 0;
  /** The slab in-order data is copied into, and its unread region [slabStart, slabEnd). */
  private slab: Buffer | null = null;
  private slabStart = 0;
  private slabEnd = 0;
  private nextSlabSize = MIN_SLAB;
  /** Segments beyond a gap, sorted by offset, never overlapping. */
  private readonly ahead: Segment[] = [];
  aheadBytes = 0;

  /** End of the contiguous data we hold. */
  get contiguousEnd(): number {
    return this.taken + this.readyBytes;
  }

  get buffered(): number {
    return this.readyBytes + this.aheadBytes;
  }

  get hasReady(): boolean {
    return this.readyBytes > 0;
  }

  insert(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    const contiguous = this.contiguousEnd;
    if (end <= contiguous) return;
    if (offset <= contiguous) {
      this.pushReady(data.subarray(contiguous - offset));
      this.pullAhead();
      return;
    }
    // Beyond a gap: store only the parts no segment already covers.
    const a = this.ahead;
    let i = this.firstEndingAfter(offset);
    let at = offset;
    while (at < end) {
      if (i < a.length && a[i].offset <= at) {
        at = a[i].offset + a[i].data.length;
        i++;
        continue;
      }
      const pieceEnd = i < a.length ? Math.min(end, a[i].offset) : end;
      if (pieceEnd > at) {
        a.splice(i, 0, { offset: at, data: copy(data.subarray(at - offset, pieceEnd - offset)) });
        this.aheadBytes += pieceEnd - at;
        i++;
      }
      at = pieceEnd;
    }
  }

  /** The next in-order chunk for the application, or undefined. */
  take(): Buffer | undefined {
    if (this.readyHead >= this.ready.length) return this.takeSlab();
    const c = this.ready[this.readyHead];
    this.ready[this.readyHead++] = EMPTY;
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
    } else if (this.readyHead > 256 && this.readyHead * 2 > this.ready.length) {
      this.ready.splice(0, this.readyHead);
      this.readyHead = 0;
    }
    this.readyBytes -= c.length;
    this.taken += c.length;
    return c;
  }

  private takeSlab(): Buffer | undefined {
    if (this.slab === null || this.slabEnd === this.slabStart) return undefined;
    const c = this.slab.subarray(this.slabStart, this.slabEnd);
    this.slabStart = this.slabEnd;
    this.readyBytes -= c.length;
    this.taken += c.length;
    return c;
  }

  /** Forgets everything held (the stream was reset); returns how many bytes that was. */
  discard(): number {
    const n = this.buffered;
    this.taken += this.readyBytes;
    this.ready.length = 0;
    this.readyHead = 0;
    this.readyBytes = 0;
    this.slab = null;
    this.slabStart = this.slabEnd = 0;
    this.ahead.length = 0;
    this.aheadBytes = 0;
    return n;
  }

  /** Appends in-order data: copied into the open slab (a new one when it is full). */
  private pushReady(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    let slab = this.slab;
    if (slab === null || this.slabEnd + n > slab.length) {
      this.closeSlabRegion();
      slab = this.slab = Buffer.allocUnsafeSlow(Math.max(this.nextSlabSize, n));
      this.nextSlabSize = Math.min(2 * this.nextSlabSize, MAX_SLAB);
      this.slabStart = this.slabEnd = 0;
    }
    slab.set(data, this.slabEnd);
    this.slabEnd += n;
    this.readyBytes += n;
  }

  /** Moves the open slab region to the ready queue (before a whole buffer is queued after it). */
  private closeSlabRegion(): void {
    if (this.slab !== null && this.slabEnd > this.slabStart) {
      this.ready.push(this.slab.subarray(this.slabStart, this.slabEnd));
      this.slabStart = this.slabEnd;
    }
  }

  /** Moves segments that the gap-filling data reached into the ready queue. */
  private pullAhead(): void {
    const a = this.ahead;
    let n = 0;
    while (n < a.length) {
      const s = a[n];
      const contiguous = this.contiguousEnd;
      if (s.offset > contiguous) break;
      const sEnd = s.offset + s.data.length;
      this.aheadBytes -= s.data.length;
      if (sEnd > contiguous) {
        const part = s.offset === contiguous ? s.data : s.data.subarray(contiguous - s.offset);
        this.closeSlabRegion();
        this.ready.push(part);
        this.readyBytes += part.length;
      }
      n++;
    }
    if (n) a.splice(0, n);
  }

  /** Index of the first segment ending after `offset` (binary search). */
  private firstEndingAfter(offset: number): number {
    const a = this.ahead;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid].offset + a[mid].data.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

const EMPTY = Buffer.alloc(0);
const MIN_SLAB = 2 * 1024;
const MAX_SLAB = 64 * 1024;

function copy(v: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(v.length);
  b.set(v);
  return b;
}
