// One set of transport keys between us and a peer: the unit that rekeying replaces. A peer sends on its
// current keypair and still accepts a few retired ones (so no packet is lost at a switch).
import { ReplayWindow, TransportCipher } from "./crypto-adapter.js";

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  /** An initiator's keypair is confirmed once anything authenticates under it (the responder has it too). */
  confirmed: boolean;
  receivedPackets = 0;
  /** The TUN channel's keys (src/native/tun-keys.ts), derived at install when the node runs a TUN data plane. */
  tunKeys?: { send: Uint8Array; recv: Uint8Array };

  constructor(
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly sender: TransportCipher,
    readonly receiver: TransportCipher,
    readonly isInitiator: boolean,
    readonly createdAt: number,
  ) {
    this.confirmed = !isInitiator;
  }

  ageMs(now: number): number {
    return now - this.createdAt;
  }
}
