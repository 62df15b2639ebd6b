// Receiver indexes: random 32-bit numbers naming a handshake or keypair on this host, so a data packet
// finds its keys with one map lookup and an observer cannot link sessions by counting.
import { randomBytes } from "node:crypto";

export class IndexTable<T> {
  private readonly map = new Map<number, T>();

  allocate(value: T): number {
    for (;;) {
      const idx = randomBytes(4).readUInt32LE(0);
      if (idx !== 0 && !this.map.has(idx)) {
        this.map.set(idx, value);
        return idx;
      }
    }
  }

  /** Registers a value under an index allocated elsewhere (a keypair keeps its handshake's index). */
  set(idx: number, value: T): void {
    this.map.set(idx, value);
  }

  get(idx: number): T | undefined {
    return this.map.get(idx);
  }

  delete(idx: number): void {
    this.map.delete(idx);
  }

  get size(): number {
    return this.map.size;
  }
}
