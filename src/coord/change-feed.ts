// What a store shared by several coordination replicas offers besides the Store interface: an ordered log
// of what changed (node enrolled/renewed, revoked, revocation list, policy, node status), so each replica can
// bring its own map streams up to date with changes another replica committed (docs/coord.md, "Replicas on
// PostgreSQL"). SQLite serves one server and has no feed.

export type ChangeKind = "node" | "revoke" | "revocation" | "policy" | "status" | "publication";

export interface Change {
  /** Position in the log: increasing in commit order (writers serialize on one lock; see pg-store.ts). */
  seq: number;
  kind: ChangeKind;
  /** The node concerned, for node, revoke and status. */
  name?: string;
  /** The replica that made the change (ChangeFeed.replicaId of its store). */
  origin: string;
  /** The writer's clock when it logged the change (just before its commit), ms: for the lag figure in logs. */
  at: number;
}

export interface ChangeFeed {
  /** This process's replica id, written as `origin` of every change it makes. */
  readonly replicaId: string;
  /** The highest seq in the log (0 when empty). */
  latestSeq(): Promise<number>;
  /** The lowest seq still kept (the log is pruned); undefined when empty. */
  oldestSeq(): Promise<number | undefined>;
  /** Changes after `seq`, in order, at most `limit`. */
  changesSince(seq: number, limit: number): Promise<Change[]>;
  /**
   * Calls onNotify whenever another transaction committed a change (its seq; may be coalesced or lost on a
   * reconnect, so the caller also polls); onState tells when the subscription is lost and back.
   */
  subscribe(onNotify: (seq: number) => void, onState: (up: boolean, err?: Error) => void): Promise<void>;
  /** Deletes changes older than `before` (ms); returns how many. */
  prune(before: number): Promise<number>;
}
