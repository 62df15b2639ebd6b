// The one thing the stream layer knows about the layer below: an encrypted, authenticated, unreliable
// datagram session to one peer. Datagrams may be lost, duplicated or reordered, never corrupted.

/** What the stream layer needs from the encrypted session below it (one per peer). */
export interface DatagramLink {
  /**
   * Sends one datagram payload to the peer. Returns false when the layer below is full: nothing was sent;
   * call again after the owner calls StreamMux.onWritable().
   * The payload is only valid during the call (the mux reuses its encode buffer): the link copies or seals
   * it before returning.
   */
  send(payload: Uint8Array): boolean;
  /** Largest payload in bytes that fits one datagram on the current path (it changes when the path changes, e.g. 1280-byte MTU links: never send more than this). */
  maxPayload(): number;
}
