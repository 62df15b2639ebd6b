// The path manager's probes in flight (src/nat/paths.ts): each probe's id (our pid, then a sequence number) and
// what it was sent for, until its reply comes back or it is forgotten. A probe's payload on the wire is the id and
// one byte saying whether the sender sits behind no NAT (src/wire/probe.ts); the reply echoes the id.
import type { Endpoint } from "../addr/endpoint.js";
import { PROBE_ID_BYTES } from "../wire/probe.js";

/** Outstanding probes remembered (oldest forgotten first): every candidate of many peers, plus a spray. */
const MAX_OUTSTANDING = 8192;

/** What a probe was sent for: a candidate of a peer (by key), a sprayed endpoint, or a hold at rest. */
export interface Outstanding { peer: string; key: string; sentAt: number; spray?: Endpoint; hold?: boolean }

export class ProbeLedger {
  private seq = 0;
  private readonly outstanding = new Map<string, Outstanding>();

  /** A new probe's id, remembered with what it is for. */
  issue(o: Outstanding): Buffer {
    const id = Buffer.allocUnsafe(PROBE_ID_BYTES);
    id.writeUInt32BE(process.pid >>> 0, 0);
    id.writeUInt32BE(++this.seq >>> 0, 4);
    this.outstanding.set(id.toString("hex"), o);
    if (this.outstanding.size > MAX_OUTSTANDING) this.outstanding.delete(this.outstanding.keys().next().value!);
    return id;
  }

  /** The probe a reply from this peer answers (then forgotten), or undefined: unknown, late, or another peer's. */
  answer(id: Uint8Array, peer: string): Outstanding | undefined {
    const key = Buffer.from(id).toString("hex");
    const o = this.outstanding.get(key);
    if (!o || o.peer !== peer) return undefined;
    this.outstanding.delete(key);
    return o;
  }
}
