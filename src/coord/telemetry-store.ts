// Node telemetry at rest: its own SQLite file (<data>/telemetry.db), apart from coord.db. Telemetry is
// high-volume and losing its last seconds to a power cut is harmless, so it runs with synchronous=NORMAL and
// never slows the enrollment and rotation commits that coord.db fsyncs one by one. Bounded: events older
// than the retention are deleted, and the table never holds more than maxRows (the oldest go first).
import Database from "better-sqlite3";
import { join } from "node:path";
import type { PeerSnapshot, Problem, TelemetryEvent } from "./telemetry-protocol.js";

export const TELEMETRY_DB_FILE = "telemetry.db";
export const TELEMETRY_DEFAULTS = { retentionMs: 7 * 86_400_000, maxRows: 500_000 };

/** An event on the server's clock (`at`), with the node's own stamp kept as `nodeAt` (its clock may be wrong). */
export interface StoredEvent extends TelemetryEvent { id: number; node: string; nodeAt?: number }
export type ReceivedEvent = TelemetryEvent & { nodeAt?: number };
export interface NodeSnapshot { node: string; at: number; peers: PeerSnapshot[]; problems: Problem[]; clockOffsetMs?: number }
export interface EventQuery { node?: string; peer?: string; kinds?: string[]; ok?: boolean; since?: number; limit?: number }

type Row = Record<string, any>;

export class TelemetryStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;

  constructor(dataDir: string, readonly limits = TELEMETRY_DEFAULTS) {
    this.db = new Database(join(dataDir, TELEMETRY_DB_FILE));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, at INTEGER NOT NULL,
        kind TEXT NOT NULL, peer TEXT, ok INTEGER, data TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS events_by_node ON events (node, at);
      CREATE INDEX IF NOT EXISTS events_by_at ON events (at);
      CREATE TABLE IF NOT EXISTS snapshots (node TEXT PRIMARY KEY, at INTEGER NOT NULL, peers TEXT NOT NULL, problems TEXT NOT NULL, clock_offset_ms REAL);
    `);
    // Files from before the node's own stamp was kept apart get the column (NULL: `at` was the node's stamp).
    const columns = (this.db.prepare("PRAGMA table_info(events)").all() as Row[]).map((c) => c.name);
    if (!columns.includes("node_at")) this.db.exec("ALTER TABLE events ADD COLUMN node_at INTEGER");
    this.insert = this.db.prepare("INSERT INTO events (node, at, kind, peer, ok, data, node_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  }

  add(node: string, events: ReceivedEvent[]): void {
    if (events.length === 0) return;
    this.db.transaction(() => {
      for (const e of events) this.insert.run(node, e.at, e.t, e.peer ?? null, e.ok === undefined ? null : e.ok ? 1 : 0, JSON.stringify(e.data), e.nodeAt ?? null);
    })();
  }

  saveSnapshot(s: NodeSnapshot): void {
    this.db.prepare("INSERT OR REPLACE INTO snapshots (node, at, peers, problems, clock_offset_ms) VALUES (?, ?, ?, ?, ?)")
      .run(s.node, s.at, JSON.stringify(s.peers), JSON.stringify(s.problems), s.clockOffsetMs ?? null);
  }

  snapshots(): NodeSnapshot[] {
    return (this.db.prepare("SELECT * FROM snapshots ORDER BY node").all() as Row[]).map((r) => ({
      node: r.node, at: r.at, peers: JSON.parse(r.peers), problems: JSON.parse(r.problems), ...(r.clock_offset_ms !== null ? { clockOffsetMs: r.clock_offset_ms } : {}),
    }));
  }

  snapshot(node: string): NodeSnapshot | undefined {
    return this.snapshots().find((s) => s.node === node);
  }

  /** Newest first. `peer` matches either side of a pair: events of `node` about `peer`, and of `peer` about `node`. */
  query(q: EventQuery): StoredEvent[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.node && q.peer) { where.push("((node = ? AND peer = ?) OR (node = ? AND peer = ?))"); args.push(q.node, q.peer, q.peer, q.node); }
    else if (q.node) { where.push("node = ?"); args.push(q.node); }
    else if (q.peer) { where.push("(peer = ? OR node = ?)"); args.push(q.peer, q.peer); }
    if (q.kinds?.length) { where.push(`kind IN (${q.kinds.map(() => "?").join(",")})`); args.push(...q.kinds); }
    if (q.ok !== undefined) { where.push("ok = ?"); args.push(q.ok ? 1 : 0); }
    if (q.since !== undefined) { where.push("at >= ?"); args.push(q.since); }
    const limit = Math.max(1, Math.min(q.limit ?? 200, 2000));
    const sql = `SELECT * FROM events ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY at DESC, id DESC LIMIT ${limit}`;
    return (this.db.prepare(sql).all(...args) as Row[]).map((r) => ({
      id: r.id, node: r.node, at: r.at, t: r.kind, ...(r.peer !== null ? { peer: r.peer } : {}), ...(r.ok !== null ? { ok: r.ok === 1 } : {}), data: JSON.parse(r.data),
      ...(r.node_at !== null && r.node_at !== undefined ? { nodeAt: r.node_at } : {}),
    }));
  }

  count(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM events").get() as Row).n;
  }

  /** Deletes events past the retention, then the oldest beyond maxRows; returns how many went. */
  prune(now = Date.now()): number {
    let n = this.db.prepare("DELETE FROM events WHERE at < ?").run(now - this.limits.retentionMs).changes;
    const over = this.count() - this.limits.maxRows;
    if (over > 0) n += this.db.prepare("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)").run(over).changes;
    return n;
  }

  close(): void {
    this.db.close();
  }
}
