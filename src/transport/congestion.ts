// Congestion control: the interface the mux drives and the windows every controller starts from (the choice
// between controllers is controllers.ts). Windows are in bytes; "datagram" is the link's current maxPayload
// (RFC 9002's max_datagram_size).

export interface CongestionController {
  readonly name: "newreno" | "cubic";
  /** Bytes that may be in flight. */
  readonly window: number;
  readonly ssthresh: number;
  /** A packet counted in flight was acknowledged. appLimited: we were not using the window, so do not grow it. */
  onAcked(bytes: number, timeSent: number, now: number, srtt: number, appLimited: boolean): void;
  /** Loss or ECN: at most one window reduction per round trip (recovery period). */
  onCongestionEvent(timeSentOfLatestLost: number, now: number): void;
  /** Every packet lost for several PTOs: start again from the minimum window (RFC 9002 section 7.6). */
  onPersistentCongestion(): void;
  setDatagramSize(bytes: number): void;
  reset(): void;
}

export type CongestionName = CongestionController["name"];

/** RFC 9002 section 7.2: min(10 * datagram, max(14720, 2 * datagram)). */
export function initialWindow(datagram: number): number {
  return Math.min(10 * datagram, Math.max(14_720, 2 * datagram));
}

export function minimumWindow(datagram: number): number {
  return 2 * datagram;
}
