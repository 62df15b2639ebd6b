// Transport encryption of DATA packets, the replay window and key-usage limits.
import { aead, type AeadBackend } from "./aead.js";
import {
  KEY_SIZE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME_MS, REPLAY_WINDOW_SIZE,
} from "../wire/constants.js";

const NO_AD = new Uint8Array(0);

/**
 * One direction's key from the Noise split. seal/open write into caller buffers; the nonce is the
 * packet counter (Noise: 32 zero bits || 64-bit little-endian counter). Data packets carry no
 * associated data: the header fields are bound implicitly (the counter is the nonce, and the receiver
 * index only selects the key — a wrong one fails authentication).
 */
export class TransportCipher {
  private readonly key: unknown;

  constructor(key: Uint8Array, private readonly backend: AeadBackend = aead) {
    if (key.length !== KEY_SIZE) throw new Error(`transport key must be ${KEY_SIZE} bytes, got ${key.length}`);
    this.key = backend.prepareKey(key);
  }

  /** Seals plaintext into out[outOffset..] as ciphertext || tag; returns the bytes written. */
  seal(counter: number, plaintext: Uint8Array, out: Uint8Array, outOffset: number): number {
    if (!(counter >= 0 && counter < REJECT_AFTER_MESSAGES)) throw new Error(`counter ${counter} is past the key's message limit: rekey`);
    return this.backend.sealInto(this.key, counter, NO_AD, plaintext, out, outOffset);
  }

  /** Opens ciphertext || tag into out[0..]; returns the plaintext length or -1 when authentication fails. */
  open(counter: number, sealed: Uint8Array, out: Uint8Array): number {
    return this.backend.openInto(this.key, counter, NO_AD, sealed, out);
  }
}

const WORD_BITS = 32;
const WORDS = REPLAY_WINDOW_SIZE / WORD_BITS;
/** Counters this far behind the highest are refused outright (RFC 6479: window minus one word). */
export const REPLAY_WINDOW_SPAN = REPLAY_WINDOW_SIZE - WORD_BITS;

/**
 * Sliding replay window after RFC 6479: a ring of 32-bit words. check() runs before decrypting and is
 * cheap (refuses duplicates, counters older than the window and counters past the key's limit);
 * update() runs only after the packet authenticated, so forged packets cannot move the window.
 */
export class ReplayWindow {
  private readonly bits = new Uint32Array(WORDS);
  private top = -1;

  check(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0 || counter >= REJECT_AFTER_MESSAGES) return false;
    if (counter > this.top) return true;
    if (this.top - counter >= REPLAY_WINDOW_SPAN) return false;
    return (this.bits[Math.floor(counter / WORD_BITS) % WORDS] & (1 << (counter % WORD_BITS))) === 0;
  }

  /** Records an authenticated counter; call only after check() said true and open() succeeded. */
  update(counter: number): void {
    if (counter > this.top) {
      const newBlock = Math.floor(counter / WORD_BITS);
      const oldBlock = this.top < 0 ? -1 : Math.floor(this.top / WORD_BITS);
      const clear = Math.min(newBlock - oldBlock, WORDS);
      for (let i = 1; i <= clear; i++) this.bits[(oldBlock + i) % WORDS] = 0;
      this.top = counter;
    } else if (this.top - counter >= REPLAY_WINDOW_SPAN) {
      return; // outside the window: its bit would alias a newer counter's
    }
    this.bits[Math.floor(counter / WORD_BITS) % WORDS] |= 1 << (counter % WORD_BITS);
  }

  /** Highest authenticated counter, -1 before the first packet. */
  get highest(): number {
    return this.top;
  }
}

export interface KeyLimits {
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  rekeyAfterTimeMs: number;
  rejectAfterTimeMs: number;
}

export const DEFAULT_KEY_LIMITS: KeyLimits = {
  rekeyAfterMessages: REKEY_AFTER_MESSAGES,
  rejectAfterMessages: REJECT_AFTER_MESSAGES,
  rekeyAfterTimeMs: REKEY_AFTER_TIME_MS,
  rejectAfterTimeMs: REJECT_AFTER_TIME_MS,
};

/** True once a key has been used for enough messages or long enough that the initiator should rekey. */
export function shouldRekey(messages: number, ageMs: number, limits: KeyLimits = DEFAULT_KEY_LIMITS): boolean {
  return messages >= limits.rekeyAfterMessages || ageMs >= limits.rekeyAfterTimeMs;
}

/** True when a key must no longer send or receive anything (hard stop; never a nonce reuse). */
export function keyExpired(messages: number, ageMs: number, limits: KeyLimits = DEFAULT_KEY_LIMITS): boolean {
  return messages >= limits.rejectAfterMessages || ageMs >= limits.rejectAfterTimeMs;
}
