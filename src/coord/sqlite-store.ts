// SQLite store (better-sqlite3): WAL journal, synchronous=FULL so an acknowledged commit survives kill -9
// and power loss, every change in a transaction, versioned migrations recorded in schema_migrations.
import Database from "better-sqlite3";
import { closeSync, fstatSync, fsync, mkdirSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import { chooseOverlayAddress, intToIpv4 } from "./overlay-address.js";
import { checkToken } from "./tokens.js";
import { newerSchemaRefusal } from "./schema-version.js";
import { nodeFromRow, tokenFromRow, userFromRow, type Row } from "./store-rows.js";
import { publicationFromRow, publicationValues, PUBLICATION_COLUMNS, SQLITE_PUBLICATIONS_SQL } from "./publication-rows.js";
import { sessionFromRow, SQLITE_SESSIONS_SQL } from "./session-rows.js";
import type {
  CertRecord, ConsoleSession, ConsoleUser, EnrollArgs, EnrollOutcome, EnrollRefusal, NodeRecord, NodeUser, PolicyRecord, PublicationRecord, RevocationRecord, StatusUpdate, Store, TokenRecord,
} from "./store.js";

export const DB_FILE = "coord.db";
/** One enrollment of a batch: committed with it, or refused on its own. */
type EnrollResult = { ok: true; value: EnrollOutcome } | { ok: false; err: unknown };
/** Enrollments committed together at most (a bound on one transaction's time and on the queue a burst leaves). */
const MAX_ENROLL_BATCH = 256;


/** Append-only: never edit a released migration, add the next one. */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE tokens (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, tenant TEXT NOT NULL, groups TEXT NOT NULL,
        roles TEXT NOT NULL, uses_left INTEGER NOT NULL, uses_total INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        cert_ttl_ms INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
      CREATE TABLE nodes (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, groups TEXT NOT NULL, roles TEXT NOT NULL,
        enrollment_id TEXT NOT NULL, status TEXT NOT NULL, enrolled_at INTEGER NOT NULL, token_id TEXT NOT NULL,
        cert_ttl_ms INTEGER NOT NULL, serial TEXT NOT NULL, cert_pem TEXT NOT NULL, not_after INTEGER NOT NULL,
        endpoints TEXT NOT NULL DEFAULT '[]', home_relay TEXT, nat_type TEXT, last_seen INTEGER);
      CREATE TABLE certs (serial TEXT PRIMARY KEY, name TEXT NOT NULL, enrollment_id TEXT NOT NULL,
        not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL, kind TEXT NOT NULL);
      CREATE INDEX certs_by_enrollment ON certs (enrollment_id);
      CREATE TABLE revoked (serial TEXT PRIMARY KEY, name TEXT NOT NULL, not_after INTEGER NOT NULL, revoked_at INTEGER NOT NULL);
      CREATE TABLE revocation_lists (number INTEGER PRIMARY KEY, text TEXT NOT NULL, issued_at INTEGER NOT NULL);
      CREATE TABLE policies (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, hash TEXT NOT NULL,
        set_at INTEGER NOT NULL, set_by TEXT NOT NULL);
    `,
  },
  {
    // Console (dashboard) logins from `ember admin create`: scrypt password hashes, never the password.
    version: 2,
    sql: `
      CREATE TABLE console_users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
    `,
  },
  {
    // Overlay IPv4 addresses (TUN mode), one per identity. Kept apart from nodes, whose row a re-enrollment
    // replaces, and never deleted: an address stays with its identity for good and is never handed to another.
    // Nodes enrolled before this version get theirs in migrate() (the choice needs the hash, not SQL).
    version: 3,
    sql: `
      CREATE TABLE overlay_addresses (tenant TEXT NOT NULL, name TEXT NOT NULL, address INTEGER NOT NULL UNIQUE,
        assigned_at INTEGER NOT NULL, PRIMARY KEY (tenant, name));
    `,
  },
  {
    // Users of the mesh (issue 15): a console user with a tenant is a person policies name as user:NAME; the
    // person logged in on a device lives on the device's row, so a re-enrollment (a new row) logs them out.
    version: 4,
    sql: `
      ALTER TABLE console_users ADD COLUMN tenant TEXT;
      ALTER TABLE console_users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE console_users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE nodes ADD COLUMN user_name TEXT;
      ALTER TABLE nodes ADD COLUMN user_groups TEXT;
      ALTER TABLE nodes ADD COLUMN user_cert_pem TEXT;
      ALTER TABLE nodes ADD COLUMN user_not_after INTEGER;
      CREATE INDEX nodes_by_user ON nodes (user_name);
    `,
  },
  // Services published to public edges (docs/external-access.md).
  { version: 5, sql: SQLITE_PUBLICATIONS_SQL },
  // Console logins, server-side (issue 28).
  { version: 6, sql: SQLITE_SESSIONS_SQL },
  // Releases (issue 27): the protocol and software version each node reported last (NULL before its first report,
  // and for a node of release 0.1.0 the version stays NULL: it reports protocol 1 only by saying nothing).
  { version: 7, sql: "ALTER TABLE nodes ADD COLUMN protocol INTEGER; ALTER TABLE nodes ADD COLUMN software_version TEXT;" },
];

/** Nodes with their overlay address (absent only before migrate() ran). */
const NODES_SELECT = `SELECT n.*, a.address AS overlay_address FROM nodes n
  LEFT JOIN overlay_addresses a ON a.tenant = n.tenant AND a.name = n.name`;

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  readonly label: string;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.label = `SQLite at ${join(dataDir, DB_FILE)}`;
    this.db = new Database(join(dataDir, DB_FILE));
    this.db.pragma("journal_mode = WAL");
    // FULL: the WAL is fsynced at every commit, so "acknowledged" means "on disk" even across power loss.
    this.db.pragma("synchronous = FULL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
  }

  /** Prepared statements of the hot paths (enrollment, map stream admission), prepared once. */
  private readonly statements = new Map<string, Database.Statement>();
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  async migrate(): Promise<number> {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    const applied = new Set((this.db.prepare("SELECT version FROM schema_migrations").all() as Row[]).map((r) => r.version as number));
    const current = Math.max(0, ...applied);
    const latest = MIGRATIONS[MIGRATIONS.length - 1].version;
    const newer = newerSchemaRefusal(current, latest, this.label);
    if (newer) throw new Error(newer);
    // Every version not recorded yet, not only those above the highest: migrations numbered apart can merge.
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now());
      }).immediate();
    }
    this.db.transaction(() => {
      for (const n of this.db.prepare(`${NODES_SELECT} WHERE a.address IS NULL`).all() as Row[]) this.overlayAddressFor(n.tenant, n.name, Date.now());
    }).immediate();
    return latest;
  }

  /** Inside a transaction: the identity's overlay address, chosen and recorded on first use. */
  private overlayAddressFor(tenant: string, name: string, now: number): string {
    const have = this.stmt("SELECT address FROM overlay_addresses WHERE tenant = ? AND name = ?").get(tenant, name) as Row | undefined;
    if (have) return intToIpv4(have.address);
    const used = this.stmt("SELECT 1 FROM overlay_addresses WHERE address = ?");
    const ip = chooseOverlayAddress(tenant, name, (a) => used.get(a) !== undefined);
    this.stmt("INSERT INTO overlay_addresses (tenant, name, address, assigned_at) VALUES (?, ?, ?, ?)").run(tenant, name, ip, now);
    return intToIpv4(ip);
  }

  async createToken(t: TokenRecord): Promise<void> {
    this.db.prepare(`INSERT INTO tokens (id, secret_hash, tenant, groups, roles, uses_left, uses_total, expires_at, cert_ttl_ms, created_at, created_by)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(t.id, t.secretHash, t.tenant, JSON.stringify(t.groups), JSON.stringify(t.roles),
      t.usesLeft, t.usesTotal, t.expiresAt, t.certTtlMs, t.createdAt, t.createdBy);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const r = this.stmt("SELECT * FROM tokens WHERE id = ?").get(id) as Row | undefined;
    return r ? tokenFromRow(r) : undefined;
  }

  /**
   * Group commit. Enrollments commit in batches: one transaction (synchronous=NORMAL, so SQLite does not fsync
   * at COMMIT), then one fsync of the WAL on the thread pool, after which every enrollment of the batch is
   * acknowledged: exactly the fsync synchronous=FULL would have made, shared. Enrollments that arrive while a
   * batch's fsync runs form the next batch, so the event loop never waits for the disk and a burst costs one
   * fsync per batch instead of one each (docs/performance.md). Each enrollment runs in its own savepoint: a
   * refusal or constraint error stays its own.
   */
  async enroll(args: EnrollArgs): Promise<EnrollOutcome> {
    return new Promise((resolve, reject) => {
      this.enrollQueue.push({ args, resolve, reject });
      if (this.enrollQueue.length === 1 && !this.syncing) setImmediate(() => this.commitEnrollments());
    });
  }

  private readonly enrollQueue: { args: EnrollArgs; resolve: (r: EnrollOutcome) => void; reject: (err: unknown) => void }[] = [];
  /** A batch's WAL fsync is running; its completion starts the next batch. */
  private syncing = false;
  private walFd?: number;

  /**
   * A batch's transaction, with each enrollment in its own nested one (a SAVEPOINT). Made once: better-sqlite3 builds
   * a transaction's functions and statements anew at every transaction() call.
   */
  private enrollBatchTx?: (batch: EnrollArgs[], results: EnrollResult[]) => void;
  private batchTx(): (batch: EnrollArgs[], results: EnrollResult[]) => void {
    if (!this.enrollBatchTx) {
      const one = this.db.transaction((a: EnrollArgs) => this.enrollOne(a));
      this.enrollBatchTx = this.db.transaction((batch: EnrollArgs[], results: EnrollResult[]) => {
        for (const a of batch) {
          try { results.push({ ok: true, value: one(a) }); } catch (err) { results.push({ ok: false, err }); }
        }
      }).immediate;
    }
    return this.enrollBatchTx;
  }

  private commitEnrollments(): void {
    if (this.syncing || this.enrollQueue.length === 0) return;
    const batch = this.enrollQueue.splice(0, MAX_ENROLL_BATCH);
    const results: EnrollResult[] = [];
    try {
      this.db.pragma("synchronous = NORMAL");
      try {
        this.batchTx()(batch.map((item) => item.args), results);
      } finally { this.db.pragma("synchronous = FULL"); }
    } catch (err) {
      for (const item of batch) item.reject(err);
      setImmediate(() => this.commitEnrollments());
      return;
    }
    this.syncing = true;
    const settle = (err: Error | null) => {
      this.syncing = false;
      batch.forEach((item, i) => {
        const r = results[i];
        if (err) item.reject(new Error(`enrollment committed but the WAL fsync failed: ${err.message}`));
        else if (r.ok) item.resolve(r.value);
        else item.reject(r.err);
      });
      this.commitEnrollments();
    };
    try { fsync(this.wal(), settle); } catch (err) { settle(err as Error); }
  }

  /** The WAL file's descriptor, reopened if the file was replaced (it is not while this connection is open). */
  private wal(): number {
    const path = `${this.db.name}-wal`;
    if (this.walFd !== undefined && fstatSync(this.walFd).ino !== statSync(path).ino) { closeSync(this.walFd); this.walFd = undefined; }
    this.walFd ??= openSync(path, "r");
    return this.walFd;
  }

  private enrollOne(args: EnrollArgs): EnrollOutcome {
    const { node, cert } = args;
    const t = this.stmt("SELECT * FROM tokens WHERE id = ?").get(args.tokenId) as Row | undefined;
    const verdict = checkToken(t ? tokenFromRow(t) : undefined, args.now);
    if (!verdict.ok) return verdict;
    const existing = this.stmt(`${NODES_SELECT} WHERE n.name = ?`).get(node.name) as Row | undefined;
    if (existing && !args.nameFree(nodeFromRow(existing))) {
      return { ok: false, reason: "name_taken", detail: `name "${node.name}" is held by a live enrollment (revoke it first, or let its certificate expire)` };
    }
    this.stmt("UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?").run(args.tokenId);
    this.stmt(`INSERT OR REPLACE INTO nodes (name, tenant, groups, roles, enrollment_id, status, enrolled_at, token_id, cert_ttl_ms,
      serial, cert_pem, not_after, endpoints, home_relay, nat_type, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', NULL, NULL, NULL)`)
      .run(node.name, node.tenant, JSON.stringify(node.groups), JSON.stringify(node.roles), node.enrollmentId, node.status,
        node.enrolledAt, node.tokenId, node.certTtlMs, node.serial, node.certPem, node.notAfter);
    this.insertCert(cert);
    return { ok: true, overlayIp: this.overlayAddressFor(node.tenant, node.name, args.now) };
  }

  private insertCert(c: CertRecord): void {
    this.stmt("INSERT INTO certs (serial, name, enrollment_id, not_after, issued_at, kind) VALUES (?, ?, ?, ?, ?, ?)")
      .run(c.serial, c.name, c.enrollmentId, c.notAfter, c.issuedAt, c.kind);
  }

  async renew(args: { name: string; enrollmentId: string; cert: CertRecord; certPem: string }): Promise<boolean> {
    return this.db.transaction(() => {
      const r = this.db.prepare("UPDATE nodes SET serial = ?, cert_pem = ?, not_after = ? WHERE name = ? AND enrollment_id = ? AND status = 'active'")
        .run(args.cert.serial, args.certPem, args.cert.notAfter, args.name, args.enrollmentId);
      if (r.changes !== 1) return false;
      this.insertCert(args.cert);
      return true;
    }).immediate();
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const r = this.stmt(`${NODES_SELECT} WHERE n.name = ?`).get(name) as Row | undefined;
    return r ? nodeFromRow(r) : undefined;
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (this.db.prepare(`${NODES_SELECT} ORDER BY n.name`).all() as Row[]).map(nodeFromRow);
  }

  async getNodes(names: string[]): Promise<NodeRecord[]> {
    return (this.stmt(`${NODES_SELECT} WHERE n.name IN (SELECT value FROM json_each(?))`).all(JSON.stringify(names)) as Row[]).map(nodeFromRow);
  }

  async liveSerials(name: string, enrollmentId: string, now: number): Promise<{ serial: string; notAfter: number }[]> {
    return (this.db.prepare("SELECT serial, not_after FROM certs WHERE name = ? AND enrollment_id = ? AND not_after > ?")
      .all(name, enrollmentId, now) as Row[]).map((r) => ({ serial: r.serial, notAfter: r.not_after }));
  }

  async isSerialOf(serial: string, name: string, enrollmentId: string): Promise<boolean> {
    return this.stmt("SELECT 1 FROM certs WHERE serial = ? AND name = ? AND enrollment_id = ?").get(serial, name, enrollmentId) !== undefined;
  }

  async saveStatuses(updates: StatusUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    // A status report sets the version the node announced (protocol 1 and no version from release 0.1.0); a
    // status without one (the map stream closed) keeps what the last report said.
    const stmt = this.db.prepare(`UPDATE nodes SET endpoints = @endpoints, home_relay = @homeRelay, nat_type = @natType, last_seen = @lastSeen,
      protocol = CASE WHEN @reported THEN @protocol ELSE protocol END, software_version = CASE WHEN @reported THEN @version ELSE software_version END
      WHERE name = @name`);
    this.db.transaction(() => {
      for (const u of updates) {
        stmt.run({ endpoints: JSON.stringify(u.endpoints), homeRelay: u.homeRelay ?? null, natType: u.natType ?? null, lastSeen: u.lastSeen, name: u.name,
          reported: u.protocol === undefined ? 0 : 1, protocol: u.protocol ?? null, version: u.version ?? null });
      }
    }).immediate();
  }

  async revoke(args: { name: string; now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord | undefined> {
    return this.db.transaction((): RevocationRecord | undefined => {
      const node = this.db.prepare("SELECT * FROM nodes WHERE name = ?").get(args.name) as Row | undefined;
      if (!node) return undefined;
      this.db.prepare("UPDATE nodes SET status = 'revoked' WHERE name = ?").run(args.name);
      const certs = this.db.prepare("SELECT serial, not_after FROM certs WHERE name = ? AND enrollment_id = ?").all(args.name, node.enrollment_id) as Row[];
      const ins = this.db.prepare("INSERT OR IGNORE INTO revoked (serial, name, not_after, revoked_at) VALUES (?, ?, ?, ?)");
      for (const c of certs) ins.run(c.serial, args.name, c.not_after, args.now);
      return this.newList(args);
    }).immediate();
  }

  async publishRevocation(args: { now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord> {
    return this.db.transaction(() => this.newList(args)).immediate();
  }

  /** Inside a transaction: signs and stores the next list of the revoked serials. */
  private newList(args: { now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): RevocationRecord {
    // Expired serials need no listing: the verifier already refuses expired certificates.
    const serials = (this.db.prepare("SELECT serial, not_after FROM revoked WHERE not_after > ?").all(args.now - 3_600_000) as Row[])
      .map((r) => ({ serial: r.serial as string, notAfter: r.not_after as number }));
    const last = (this.db.prepare("SELECT MAX(number) AS n FROM revocation_lists").get() as Row).n ?? 0;
    const number = Math.max(last, args.minNumber) + 1;
    const text = args.sign(number, serials.map((s) => s.serial));
    this.db.prepare("INSERT INTO revocation_lists (number, text, issued_at) VALUES (?, ?, ?)").run(number, text, args.now);
    return { number, text, serials };
  }

  async getRevocation(): Promise<RevocationRecord | undefined> {
    const r = this.db.prepare("SELECT number, text FROM revocation_lists ORDER BY number DESC LIMIT 1").get() as Row | undefined;
    if (!r) return undefined;
    const serials = (this.db.prepare("SELECT serial, not_after FROM revoked").all() as Row[]).map((s) => ({ serial: s.serial as string, notAfter: s.not_after as number }));
    return { number: r.number, text: r.text, serials };
  }

  async setPolicy(p: Omit<PolicyRecord, "id">): Promise<PolicyRecord> {
    const r = this.db.prepare("INSERT INTO policies (source, hash, set_at, set_by) VALUES (?, ?, ?, ?)").run(p.source, p.hash, p.setAt, p.setBy);
    return { ...p, id: Number(r.lastInsertRowid) };
  }

  async getPolicy(): Promise<PolicyRecord | undefined> {
    const r = this.db.prepare("SELECT * FROM policies ORDER BY id DESC LIMIT 1").get() as Row | undefined;
    return r ? { id: r.id, source: r.source, hash: r.hash, setAt: r.set_at, setBy: r.set_by } : undefined;
  }

  async tokenGroups(): Promise<string[]> {
    const groups = new Set<string>();
    for (const r of this.db.prepare("SELECT DISTINCT groups FROM tokens").all() as Row[]) for (const g of JSON.parse(r.groups)) groups.add(g);
    return [...groups];
  }

  async putUser(u: ConsoleUser): Promise<boolean> {
    const existed = this.db.prepare("SELECT 1 FROM console_users WHERE username = ?").get(u.username) !== undefined;
    this.db.prepare("INSERT OR REPLACE INTO console_users (username, password_hash, created_at, created_by, tenant, groups, disabled) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(u.username, u.passwordHash, u.createdAt, u.createdBy, u.tenant ?? null, JSON.stringify(u.groups ?? []), u.disabled ? 1 : 0);
    return !existed;
  }

  async getUser(username: string): Promise<ConsoleUser | undefined> {
    const r = this.db.prepare("SELECT * FROM console_users WHERE username = ?").get(username) as Row | undefined;
    return r ? userFromRow(r) : undefined;
  }

  async listUsers(): Promise<ConsoleUser[]> {
    return (this.db.prepare("SELECT * FROM console_users ORDER BY username").all() as Row[]).map(userFromRow);
  }

  async setNodeUser(args: { name: string; enrollmentId: string; user?: NodeUser }): Promise<boolean> {
    const u = args.user;
    return this.db.prepare(`UPDATE nodes SET user_name = ?, user_groups = ?, user_cert_pem = ?, user_not_after = ?
      WHERE name = ? AND enrollment_id = ? AND status = 'active'`)
      .run(u?.name ?? null, u ? JSON.stringify(u.groups) : null, u?.certPem ?? null, u?.notAfter ?? null, args.name, args.enrollmentId).changes === 1;
  }

  async setUserDisabled(username: string, disabled: boolean): Promise<string[] | undefined> {
    return this.db.transaction((): string[] | undefined => {
      if (this.db.prepare("UPDATE console_users SET disabled = ? WHERE username = ? AND tenant IS NOT NULL").run(disabled ? 1 : 0, username).changes !== 1) return undefined;
      if (!disabled) return [];
      return this.clearLogins("user_name = ?", username);
    }).immediate();
  }

  async clearExpiredLogins(now: number): Promise<string[]> {
    return this.db.transaction(() => this.clearLogins("user_not_after <= ?", now)).immediate();
  }

  /** Inside a transaction: logs out the devices `where` picks; their names. */
  private clearLogins(where: string, arg: unknown): string[] {
    const names = (this.db.prepare(`SELECT name FROM nodes WHERE user_name IS NOT NULL AND ${where}`).all(arg) as Row[]).map((r) => r.name as string);
    if (names.length) this.db.prepare(`UPDATE nodes SET user_name = NULL, user_groups = NULL, user_cert_pem = NULL, user_not_after = NULL WHERE user_name IS NOT NULL AND ${where}`).run(arg);
    return names;
  }

  async deleteUser(username: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM console_users WHERE username = ?").run(username).changes === 1;
  }

  async createConsoleSession(x: ConsoleSession): Promise<void> {
    this.db.prepare("INSERT INTO console_sessions (sid, username, method, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
      .run(x.sid, x.username, x.method, x.createdAt, x.expiresAt);
  }

  async getConsoleSession(sid: string): Promise<ConsoleSession | undefined> {
    const r = this.stmt("SELECT * FROM console_sessions WHERE sid = ?").get(sid) as Row | undefined;
    return r ? sessionFromRow(r) : undefined;
  }

  async endConsoleSession(sid: string, now: number, why: string): Promise<boolean> {
    return this.db.prepare("UPDATE console_sessions SET ended_at = ?, ended_why = ? WHERE sid = ? AND ended_at IS NULL").run(now, why, sid).changes === 1;
  }

  async endUserSessions(username: string, now: number, why: string): Promise<number> {
    return this.db.prepare("UPDATE console_sessions SET ended_at = ?, ended_why = ? WHERE username = ? AND method = 'password' AND ended_at IS NULL AND expires_at > ?")
      .run(now, why, username, now).changes;
  }

  async pruneConsoleSessions(now: number): Promise<number> {
    return this.db.prepare("DELETE FROM console_sessions WHERE expires_at <= ?").run(now).changes;
  }

  async listRevoked(): Promise<{ serial: string; name: string; notAfter: number; revokedAt: number }[]> {
    return (this.db.prepare("SELECT serial, name, not_after, revoked_at FROM revoked ORDER BY revoked_at DESC").all() as Row[])
      .map((r) => ({ serial: r.serial, name: r.name, notAfter: r.not_after, revokedAt: r.revoked_at }));
  }

  async listPublications(): Promise<PublicationRecord[]> {
    return (this.db.prepare("SELECT * FROM publications ORDER BY created_at, hostname").all() as Row[]).map(publicationFromRow);
  }

  async putPublication(p: PublicationRecord): ReturnType<Store["putPublication"]> {
    return this.db.transaction(() => {
      const holder = this.db.prepare("SELECT node, service FROM publications WHERE hostname = ?").get(p.hostname) as Row | undefined;
      if (holder && (holder.node !== p.node || holder.service !== p.service)) return { ok: false as const, holder: { node: holder.node, service: holder.service } };
      this.db.prepare("DELETE FROM publications WHERE node = ? AND service = ?").run(p.node, p.service);
      this.db.prepare(`INSERT INTO publications (${PUBLICATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...publicationValues(p));
      return { ok: true as const };
    }).immediate();
  }

  async deletePublication(node: string, service: string): Promise<boolean> {
    return this.db.prepare("DELETE FROM publications WHERE node = ? AND service = ?").run(node, service).changes > 0;
  }

  async close(): Promise<void> {
    while (this.syncing || this.enrollQueue.length) await new Promise((r) => setImmediate(r));
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.db.close();
  }
}
