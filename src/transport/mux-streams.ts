// StreamTable: the mux's live streams by id, how many each side has open, and which stream numbers each side
// has used since the current pairing of epochs began. Ids are relative to the sender of a frame (constants.ts,
// STREAM_ID_PEER_BIT): our streams have even ids in our terms, the peer's odd ones.
import { DROP, type DropReason } from "./constants.js";
import { IdWindow, type IdMark } from "./ids.js";
import type { Stream } from "./stream.js";

/** The wire id the peer used is its own name for the stream; ours differs in the low bit. */
export function flipId(id: number): number {
  return id % 2 === 0 ? id + 1 : id - 1;
}

export class StreamTable {
  private readonly byId = new Map<number, Stream>();
  private outboundOpen = 0;
  private inboundOpen = 0;
  /** Our next stream number (the stream's id is twice it). */
  private nextLocal = 0;
  /** The peer's stream numbers seen (OPEN, or a RESET that overtook it). */
  private remoteIds: IdWindow;

  constructor(private readonly idWindow: number) {
    this.remoteIds = new IdWindow(idWindow);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Streams we opened that are not done. */
  get outbound(): number {
    return this.outboundOpen;
  }

  /** Streams the peer opened that are not done. */
  get inbound(): number {
    return this.inboundOpen;
  }

  get(id: number): Stream | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<Stream> {
    return this.byId.values();
  }

  /** The id of the next stream we open (each number is used once). */
  nextLocalId(): number {
    return 2 * this.nextLocal++;
  }

  add(s: Stream): void {
    this.byId.set(s.id, s);
    if (s.outbound) this.outboundOpen++;
    else this.inboundOpen++;
  }

  /** Both parts of the stream are settled: it is forgotten (a stream already replaced or cleared is ignored). */
  remove(s: Stream): void {
    if (this.byId.get(s.id) !== s) return;
    this.byId.delete(s.id);
    if (s.outbound) this.outboundOpen--;
    else this.inboundOpen--;
  }

  /** Records that the peer used the number of its stream `id` (in our terms). */
  markRemote(id: number): IdMark {
    return this.remoteIds.mark(Math.floor(id / 2));
  }

  /** Why a frame naming `id` (in our terms) found no stream: the stream is closed, or was never opened. */
  missing(id: number): DropReason {
    const n = Math.floor(id / 2);
    const known = id % 2 === 0 ? n < this.nextLocal : this.remoteIds.seen(n);
    return known ? DROP.CLOSED_STREAM : DROP.UNKNOWN_STREAM;
  }

  /** Every stream was abandoned. */
  clear(): void {
    this.byId.clear();
    this.outboundOpen = this.inboundOpen = 0;
  }

  /**
   * Stream numbers start over with a new pairing of epochs (the old ones are gone on both sides, and packets
   * naming them carry epochs that are now dropped).
   */
  restartNumbering(): void {
    this.nextLocal = 0;
    this.remoteIds = new IdWindow(this.idWindow);
  }
}
