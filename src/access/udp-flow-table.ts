// The UDP flows of one listener (a SOCKS5 UDP association, a UDP forward): one DatagramFlow per key, at most
// `max`, each counted and logged the same way when it opens, drops, is refused or closes. A key whose dial
// failed is held for UDP_FAILED_HOLD_MS (its datagrams dropped, not dialled again one by one); `holdAll` holds
// every key at once (a forward has one destination for all its clients).
import type { Duplex } from "node:stream";
import { UDP_FAILED_HOLD_MS } from "./limits.js";
import type { DialErrorCode } from "./types.js";
import { DatagramFlow } from "./udp-flow.js";

export interface UdpFlowTableOptions {
  max: number;
  idleMs: number;
  counters: { inc(key: string): void };
  log: { warn(o: object, m?: string): void; debug(o: object, m?: string): void };
  /** Log fields of a flow (its scope and destination) and the message prefix ("socks5", "forward"). */
  fields: (key: string, to: string) => object;
  prefix: string;
  holdAll?: boolean;
  /** A dial was refused (after the counters and the log). */
  onRefused?: (key: string, to: string, code: DialErrorCode | "failed", reason: string) => void;
}

export class UdpFlowTable {
  private readonly flows = new Map<string, DatagramFlow>();
  private readonly held = new Map<string, number>();

  constructor(private readonly o: UdpFlowTableOptions) {}

  get size(): number {
    return this.flows.size;
  }

  get(key: string): DatagramFlow | undefined {
    return this.flows.get(key);
  }

  /** Datagrams for this key are dropped for a while (a resolution or a dial failed). */
  hold(key: string): void {
    const k = this.holdKey(key);
    if (this.held.size >= this.o.max) this.held.delete(this.held.keys().next().value as string);
    this.held.set(k, Date.now() + UDP_FAILED_HOLD_MS);
  }

  /**
   * A flow for a new key: null (counted) when the key is held or the table is full, or when `dial` gives no stream
   * (the caller counted why); `dial` names the destination for the log. `deliver` sends a datagram from the mesh
   * back to the local client.
   */
  open(key: string, dial: () => { stream: Promise<Duplex>; to: string } | null, deliver: (payload: Buffer, done: () => void) => void): DatagramFlow | null {
    const { counters, log } = this.o;
    const hk = this.holdKey(key);
    const until = this.held.get(hk);
    if (until !== undefined && Date.now() < until) {
      counters.inc("udp_drop_dial_failed");
      return null;
    }
    this.held.delete(hk);
    if (this.flows.size >= this.o.max) {
      counters.inc("udp_drop_flow_limit");
      return null;
    }
    const dialled = dial();
    if (!dialled) return null;
    const { stream, to } = dialled;
    counters.inc("udp_flows");
    const flow: DatagramFlow = new DatagramFlow({
      stream,
      idleMs: this.o.idleMs,
      deliver: (payload, done) => {
        counters.inc("udp_datagrams_out");
        deliver(payload, done);
      },
      onDrop: (why) => counters.inc(`udp_drop_${why}`),
      onClose: (why) => {
        if (this.flows.get(key) === flow) this.flows.delete(key);
        const fields = this.o.fields(key, to);
        if (why.dialCode) {
          counters.inc(why.dialCode);
          this.hold(key);
          log.warn({ ...fields, code: why.dialCode, reason: why.reason }, `${this.o.prefix}: udp flow refused`);
          this.o.onRefused?.(key, to, why.dialCode, why.reason ?? why.dialCode);
        } else if (why.framingError) {
          counters.inc("udp_framing_errors");
          log.warn({ ...fields, reason: why.reason }, `${this.o.prefix}: udp flow closed`);
        } else {
          if (why.idle) counters.inc("udp_flows_idle_closed");
          log.debug({ ...fields, reason: why.reason }, `${this.o.prefix}: udp flow closed`);
        }
      },
    });
    this.flows.set(key, flow);
    return flow;
  }

  closeAll(): void {
    for (const f of [...this.flows.values()]) f.close();
  }

  private holdKey(key: string): string {
    return this.o.holdAll ? "*" : key;
  }
}
