// Keeps this replica's map streams in step with changes other replicas committed to the shared store: woken by
// the feed's notifications (and a slow poll in case one is lost), it reads the change log after the last seq
// it applied, re-reads what changed (nodes, revocation list, policy) and feeds the MapHub the same calls a
// local change makes. The decisions (planChanges, decideNode) are pure; ReplicaSync does the I/O.
import type { Logger } from "pino";
import type { Change, ChangeFeed } from "./change-feed.js";
import { hubPeerFromNode, type HubPeer, type MapHub } from "./map-hub.js";
import type { NodeRecord, Store } from "./store.js";

/** Backstop for a lost notification (a LISTEN connection that dropped and came back): the usual path is NOTIFY. */
export const REPLICA_POLL_MS = 5_000;
/** Changes read per query, and queries per catch-up: bounded work per wake-up (the next wake-up goes on). */
const PAGE = 1_000;
const MAX_PAGES = 50;
/** Changes are kept this long; a replica cut off for longer re-reads everything (full resync). */
export const CHANGE_RETENTION_MS = 24 * 3_600_000;
const PRUNE_EVERY_MS = 10 * 60_000;

export interface SyncPlan {
  /** The seq to continue after. */
  lastSeq: number;
  /** Nodes another replica changed (enrolled, renewed, revoked, status), each to be re-read. */
  names: string[];
  revocation: boolean;
  policy: boolean;
  /** A publication changed: external access re-reads them (node changes reach it one by one, see apply). */
  publications?: boolean;
  /** Changes from other replicas in this batch, and the oldest one's commit time (for the lag figure). */
  foreign: number;
  oldestAt?: number;
}

/** What a batch of changes asks this replica to re-read; its own changes it applied when it made them. */
export function planChanges(changes: Change[], self: string, fromSeq: number): SyncPlan {
  const names = new Set<string>();
  const plan: SyncPlan = { lastSeq: fromSeq, names: [], revocation: false, policy: false, foreign: 0 };
  for (const c of changes) {
    plan.lastSeq = Math.max(plan.lastSeq, c.seq);
    if (c.origin === self) continue;
    plan.foreign++;
    plan.oldestAt = Math.min(plan.oldestAt ?? c.at, c.at);
    if (c.kind === "policy") plan.policy = true;
    if (c.kind === "revoke" || c.kind === "revocation") plan.revocation = true;
    if (c.kind === "publication") plan.publications = true;
    if (c.name !== undefined) names.add(c.name);
  }
  plan.names = [...names];
  return plan;
}

export type NodeAction = "upsert" | "revoke" | "status" | "none";

/**
 * What the hub must do for one node, from the database row and what the hub holds. `attachedHere`: the node's
 * map stream is on this replica, whose in-memory status is fresher than the database's.
 */
export function decideNode(row: NodeRecord | undefined, held: HubPeer | undefined, attachedHere: boolean): NodeAction {
  if (!row || row.status !== "active") return held ? "revoke" : "none";
  if (!held || held.enrollmentId !== row.enrollmentId || held.certPem !== row.certPem || held.overlayIp !== row.overlayIp) return "upsert";
  if (held.user?.certPem !== row.user?.certPem) return "upsert";
  if (attachedHere) return "none";
  const same = held.endpoints.length === row.endpoints.length && held.endpoints.every((e, i) => e === row.endpoints[i]);
  return same && held.homeRelay === row.homeRelay && held.lastSeen === row.lastSeen ? "none" : "status";
}

/** The server side of a sync: what only the server can apply (its verifier, its compiled policy). */
export interface ReplicaTarget {
  readonly store: Store;
  readonly hub: MapHub;
  readonly log: Logger;
  /** Reads the stored policy and, when it differs from the one in force, applies it to the hub. */
  reloadPolicy(): Promise<void>;
  /** Reads the stored revocation list, applies it when newer; returns the list text in force. */
  reloadRevocation(): Promise<string | undefined>;
  /** Another replica enrolled, renewed or revoked this node (an edge, a publisher?): external access is told. */
  nodeChanged?(name: string, row: NodeRecord | undefined): void;
  /** Publications or the policy changed elsewhere: what external access derives from them is re-read. */
  reloadExternal?(): Promise<void>;
}

export class ReplicaSync {
  readonly stats = { batches: 0, applied: 0, resyncs: 0, lastLagMs: 0 };
  private last: number;
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  private timers: NodeJS.Timeout[] = [];

  /** `fromSeq`: the log's head read before the server loaded its state from the store. */
  constructor(private readonly feed: ChangeFeed, private readonly target: ReplicaTarget, fromSeq: number) {
    this.last = fromSeq;
  }

  get lastSeq(): number { return this.last; }

  async start(): Promise<void> {
    await this.feed.subscribe(() => this.kick(), (up, err) => {
      if (up) {
        this.target.log.info({ event: "replica_feed_up" }, "listening for other replicas' changes");
        this.kick(); // notifications may have been missed while the connection was down
      } else this.target.log.warn({ event: "replica_feed_down", err: err?.message }, "lost the change notifications; reconnecting (polling meanwhile)");
    });
    this.timers.push(setInterval(() => this.kick(), REPLICA_POLL_MS).unref());
    this.timers.push(setInterval(() => void this.feed.prune(Date.now() - CHANGE_RETENTION_MS).catch(() => {}), PRUNE_EVERY_MS).unref());
    this.kick();
  }

  /** Runs a catch-up now, or once more after the one running. */
  kick(): void {
    if (this.closed) return;
    if (this.running) { this.again = true; return; }
    this.running = (async () => {
      do {
        this.again = false;
        try { await this.catchUp(); } catch (err) {
          this.target.log.error({ event: "replica_sync_failed", err: (err as Error).message }, "could not read other replicas' changes (retrying)");
          break; // the poll or the next notification tries again
        }
      } while (this.again && !this.closed);
    })().finally(() => { this.running = undefined; });
  }

  /** Waits for the catch-up in progress (tests, close). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.idle();
  }

  private async catchUp(): Promise<void> {
    for (let page = 0; page < MAX_PAGES && !this.closed; page++) {
      const changes = await this.feed.changesSince(this.last, PAGE);
      if (changes.length === 0) return;
      // A gap after our position is a writer's rolled-back seq or a pruned stretch: only then is the log's
      // oldest row read to tell which (one query per catch-up otherwise).
      if (this.last > 0 && changes[0].seq > this.last + 1 && (await this.resyncIfPruned())) continue;
      const plan = planChanges(changes, this.feed.replicaId, this.last);
      if (plan.foreign > 0) await this.apply(plan);
      this.last = plan.lastSeq;
      if (changes.length < PAGE) return;
    }
    this.again = true; // more than MAX_PAGES pages behind: go on in the next round
  }

  /** What we missed was pruned: re-read every node, the list and the policy, and go on from the log's head. */
  private async resyncIfPruned(): Promise<boolean> {
    const oldest = await this.feed.oldestSeq();
    if (oldest === undefined || oldest <= this.last + 1) return false;
    const head = await this.feed.latestSeq();
    await this.apply(await this.fullPlan(head));
    this.stats.resyncs++;
    this.target.log.warn({ event: "replica_resync", from: this.last, oldest }, "change log pruned past this replica's position: full re-read");
    this.last = head;
    return true;
  }

  private async fullPlan(head: number): Promise<SyncPlan> {
    const names = new Set((await this.target.store.listNodes()).map((n) => n.name));
    for (const p of this.target.hub.allPrincipals()) names.add(p.name);
    return { lastSeq: head, names: [...names], revocation: true, policy: true, publications: true, foreign: names.size };
  }

  private async apply(plan: SyncPlan): Promise<void> {
    const { store, hub } = this.target;
    const t0 = performance.now();
    if (plan.policy) await this.target.reloadPolicy();
    const listText = plan.revocation ? await this.target.reloadRevocation() : undefined;
    let revokedHere = false;
    // The named nodes in one query: a status flush names hundreds, and reading every node instead made each
    // catch-up cost the size of the mesh (two replicas enrolling 10,000 nodes ran four times slower than one).
    const rows = new Map((plan.names.length > 0 ? await store.getNodes(plan.names) : []).map((n) => [n.name, n]));
    for (const name of plan.names) {
      const row = rows.get(name);
      const held = hub.peer(name);
      const action = decideNode(row, held, hub.isOnline(name));
      if (action === "revoke") {
        const text = listText ?? (await this.target.reloadRevocation());
        if (text) { hub.revoke(name, text); revokedHere = true; }
        this.target.nodeChanged?.(name, undefined);
      } else if (action === "upsert") {
        // A renewal keeps what the hub knows live; services are announced to the replica holding the stream.
        const live = held && held.enrollmentId === row!.enrollmentId && hub.isOnline(name)
          ? { endpoints: held.endpoints, homeRelay: held.homeRelay, lastSeen: held.lastSeen } : {};
        hub.upsertPeer({ ...hubPeerFromNode(row!), ...live, ...(held?.services ? { services: held.services } : {}) });
        this.target.nodeChanged?.(name, row);
      } else if (action === "status") {
        hub.status(name, { endpoints: row!.endpoints, homeRelay: row!.homeRelay, lastSeen: row!.lastSeen ?? Date.now() });
      }
    }
    // A list that revoked no node of the map (a CA revocation, an admin's certificate) still reaches every stream.
    if (listText && !revokedHere) hub.publishRevocation(listText);
    // Status reports (most of the log) change nothing external access depends on: no re-read for them.
    if (plan.policy || plan.publications) await this.target.reloadExternal?.();
    this.stats.batches++;
    this.stats.applied += plan.foreign;
    if (plan.oldestAt !== undefined) this.stats.lastLagMs = Date.now() - plan.oldestAt;
    this.target.log.debug({ event: "replica_changes", changes: plan.foreign, nodes: plan.names.length, policy: plan.policy, revocation: plan.revocation, lagMs: this.stats.lastLagMs, tookMs: Math.round(performance.now() - t0) });
  }
}
