// What a mux reports (StreamMux.stats()): counters since it was created, and its state right now.
// Drop reasons are DROP in constants.ts; every discarded datagram or frame counts under exactly one.

export interface MuxStats {
  epoch: number;
  peerEpoch: number;
  packetsSent: number;
  packetsReceived: number;
  /** Packets that carried stream data sent before. */
  packetsRetransmitted: number;
  packetsLost: number;
  ackOnlyPacketsSent: number;
  bytesSent: number;
  bytesReceived: number;
  /** Unique stream payload bytes, each counted once. */
  streamBytesSent: number;
  streamBytesReceived: number;
  openStreams: number;
  streamsOpened: number;
  streamsAccepted: number;
  /** The peer's opens we refused (limit, no listener, the application's refusals). */
  opensRefused: number;
  /** Unacknowledged plus unsent bytes held for all streams. */
  sendBuffered: number;
  /** Received bytes held for all streams (in order, or past a gap). */
  receiveBuffered: number;
  srttMs: number;
  rttVarMs: number;
  minRttMs: number;
  latestRttMs: number;
  cwnd: number;
  ssthresh: number;
  bytesInFlight: number;
  ptoCount: number;
  ptoFired: number;
  persistentCongestion: number;
  /** Loss events not taken as congestion: too little loss over the last round trips to mean a full queue. */
  randomLossEvents: number;
  congestion: string;
  peerRestarts: number;
  idleTimeouts: number;
  /** Packets tracked for loss detection (settled ones included until the oldest settles). */
  trackedPackets: number;
  /** Frames queued that no stream holds (refusals, resets of unknown streams): bounded by maxRefusalBacklog. */
  pendingControlFrames: number;
  /** A timer is armed (none at rest, none after close). */
  timerArmed: boolean;
  /** The link said it is full; nothing is sent until the owner calls onWritable(). */
  linkBlocked: boolean;
  drops: Record<string, number>;
}
