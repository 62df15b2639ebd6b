// A map stream's resume log: the deltas sent since its last full map, so a node back within the grace time gets
// what it missed instead of a full map. Entries are the shared encodings of the deltas (one per change, however
// many streams it went to); a stream's frame is rebuilt from one with its seq, byte for byte what was sent. The
// log's seqs follow each other (every delta to the stream is logged), so an entry's seq is its place in the log.
import { deltaFrame, deltaFrameLength, encodeDelta, type DeltaBody, type EncodedDelta } from "../wire/coord/map.js";
import { RESUME_LOG_BYTES, RESUME_LOG_FRAMES, RESUME_LOG_MAX_AGE_MS } from "./limits.js";

/** A delta encoded once for every stream it goes to, and when it was made (the log's age limit). */
export interface SharedDelta { readonly encoded: EncodedDelta; readonly at: number }

/** A delta encoded once, for every stream it goes to. */
export function shareDelta(delta: DeltaBody): SharedDelta {
  return { encoded: encodeDelta(delta), at: Date.now() };
}

/** shareDelta of what `make` gives, on first use: a fan-out that reaches no stream makes and encodes nothing. */
export function lazyShare(make: () => DeltaBody): () => SharedDelta {
  let d: SharedDelta | undefined;
  return () => (d ??= shareDelta(make()));
}

/** The last RESUME_LOG_FRAMES (at most RESUME_LOG_BYTES of frames) of RESUME_LOG_MAX_AGE_MS, oldest first. */
export class ResumeLog {
  private entries: SharedDelta[] = [];
  /** The seq of entries[0] (when there is one: the next seq to log when empty). */
  private firstSeq = 1;
  /** Bytes of the frames the entries stand for, as sent. */
  private frameBytes = 0;

  /** After a full map of this seq: nothing before it can be resumed. */
  reset(seq: number): void {
    this.entries = [];
    this.firstSeq = seq + 1;
    this.frameBytes = 0;
  }

  /** The delta sent as frame `seq` (the one after the last logged), then the oldest trimmed to the limits. */
  append(d: SharedDelta, seq: number): void {
    if (seq !== this.firstSeq + this.entries.length) throw new Error(`resume log: seq ${seq} after ${this.firstSeq + this.entries.length - 1}`);
    this.entries.push(d);
    this.frameBytes += deltaFrameLength(d.encoded, seq);
    while (this.entries.length > RESUME_LOG_FRAMES || (this.frameBytes > RESUME_LOG_BYTES && this.entries.length > 1)) this.dropOldest();
  }

  /** The oldest seq a resume can start after (its frame and every later one are here). */
  get oldestSeq(): number {
    return this.firstSeq;
  }

  /** The frames after `seq`, oldest first, as they were sent. */
  framesAfter(seq: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = Math.max(0, seq + 1 - this.firstSeq); i < this.entries.length; i++) out.push(deltaFrame(this.entries[i].encoded, this.firstSeq + i));
    return out;
  }

  /** Drops what is older than RESUME_LOG_MAX_AGE_MS: a mesh at rest holds no resume log. */
  age(now: number): void {
    let aged = 0;
    while (aged < this.entries.length && now - this.entries[aged].at > RESUME_LOG_MAX_AGE_MS) aged++;
    if (aged === 0) return;
    for (let i = 0; i < aged; i++) this.frameBytes -= deltaFrameLength(this.entries[i].encoded, this.firstSeq + i);
    this.entries = aged === this.entries.length ? [] : this.entries.slice(aged);
    this.firstSeq += aged;
  }

  get length(): number {
    return this.entries.length;
  }

  private dropOldest(): void {
    this.frameBytes -= deltaFrameLength(this.entries.shift()!.encoded, this.firstSeq);
    this.firstSeq++;
  }
}
