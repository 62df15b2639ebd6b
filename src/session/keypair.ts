// One set of transport keys between us and a peer: the unit that rekeying replaces. A peer sends on its
// current keypair and still accepts a few retired ones (so no packet is lost at a switch).
import { ReplayWindow, TransportCipher } from "./crypto-adapter.js";
import { keyExpired, shouldRekey, type KeyLimits } from "../crypto/transport.js";

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  /** An initiator's keypair is confirmed once anything authenticates under it (the responder has it too). */
  confirmed: boolean;
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

  // The key-lifetime rules are crypto/transport.ts's (shouldRekey, keyExpired); these apply them to this keypair.

  /** Used for rekey-after-messages or rekey-after-time: time for the initiator's next handshake. */
  dueForRekey(now: number, limits: KeyLimits): boolean {
    return shouldRekey(this.sendCounter, this.ageMs(now), limits);
  }

  /** Below reject-after in both messages sent and age: it may still seal. */
  canSeal(now: number, limits: KeyLimits): boolean {
    return !keyExpired(this.sendCounter, this.ageMs(now), limits);
  }

  /** Past reject-after-time: nothing is sealed or opened under it any more (what we received is not ours to count). */
  tooOld(now: number, limits: KeyLimits): boolean {
    return keyExpired(0, this.ageMs(now), limits);
  }
}
