// PostgreSQL store (node-postgres) for several active-active coordination replicas on one database.
// Same tables as sqlite-store.ts plus a change log: every transaction that changes what a map shows takes one
// transaction-level advisory lock first and appends to `changes`, so seq order is commit order, and NOTIFY
// (sent by PostgreSQL at commit) tells the other replicas to read what changed (replica-sync.ts).
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Change, ChangeFeed, ChangeKind } from "./change-feed.js";
import { chooseOverlayAddress, intToIpv4, preferredOverlayAddress } from "./overlay-address.js";
import { TOKEN_REFUSAL } from "./tokens.js";
import { nodeFromRow, tokenFromRow, userFromRow, type Row } from "./store-rows.js";
import { PG_PUBLICATIONS_SQL, publicationFromRow, publicationValues, PUBLICATION_COLUMNS } from "./publication-rows.js";
import { PG_SESSIONS_SQL, sessionFromRow } from "./session-rows.js";
import type {
  CertRecord, ConsoleSession, ConsoleUser, EnrollArgs, EnrollOutcome, NodeRecord, NodeUser, PolicyRecord, PublicationRecord, RevocationRecord, StatusUpdate, Store, TokenRecord,
} from "./store.js";

/** Advisory lock keys (class, id): "embr" in ASCII, then one id per purpose. */
const LOCK_CLASS = 0x656d6272;
const MIGRATE_LOCK = 1;
/** Held by every transaction that appends to `changes`, until its commit: no two change writers overlap. */
const CHANGE_LOCK = 2;
export const CHANGE_CHANNEL = "ember_changes";
/** A writer stuck holding the change lock makes others fail after this, not wait forever. */
const LOCK_TIMEOUT = "10s";
/** Addresses read around an identity's first choice: a collision rarely walks further (else all are read). */
const OVERLAY_WINDOW = 4096;
const LISTEN_RETRY_MS = [250, 1_000, 2_000, 5_000];
/** Enrollments per group commit: bounds one transaction's hold on the change lock. */
const MAX_ENROLL_BATCH = 64;

/** Append-only, like sqlite-store.ts's: versions 1-3 are the same tables (times as BIGINT ms), 4 is the change log. */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE tokens (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, tenant TEXT NOT NULL, groups TEXT NOT NULL,
        roles TEXT NOT NULL, uses_left INTEGER NOT NULL, uses_total INTEGER NOT NULL, expires_at BIGINT NOT NULL,
        cert_ttl_ms BIGINT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL);
      CREATE TABLE nodes (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, groups TEXT NOT NULL, roles TEXT NOT NULL,
        enrollment_id TEXT NOT NULL, status TEXT NOT NULL, enrolled_at BIGINT NOT NULL, token_id TEXT NOT NULL,
        cert_ttl_ms BIGINT NOT NULL, serial TEXT NOT NULL, cert_pem TEXT NOT NULL, not_after BIGINT NOT NULL,
        endpoints TEXT NOT NULL DEFAULT '[]', home_relay TEXT, nat_type TEXT, last_seen BIGINT);
      CREATE TABLE certs (serial TEXT PRIMARY KEY, name TEXT NOT NULL, enrollment_id TEXT NOT NULL,
        not_after BIGINT NOT NULL, issued_at BIGINT NOT NULL, kind TEXT NOT NULL);
      CREATE INDEX certs_by_enrollment ON certs (enrollment_id);
      CREATE TABLE revoked (serial TEXT PRIMARY KEY, name TEXT NOT NULL, not_after BIGINT NOT NULL, revoked_at BIGINT NOT NULL);
      CREATE TABLE revocation_lists (number BIGINT PRIMARY KEY, text TEXT NOT NULL, issued_at BIGINT NOT NULL);
      CREATE TABLE policies (id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, hash TEXT NOT NULL,
        set_at BIGINT NOT NULL, set_by TEXT NOT NULL);
    `,
  },
  {
    version: 2,
    sql: `CREATE TABLE console_users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL);`,
  },
  {
    version: 3,
    sql: `CREATE TABLE overlay_addresses (tenant TEXT NOT NULL, name TEXT NOT NULL, address BIGINT NOT NULL UNIQUE,
        assigned_at BIGINT NOT NULL, PRIMARY KEY (tenant, name));`,
  },
  {
    // What each replica follows to keep its map streams in step with the others' changes (change-feed.ts).
    version: 4,
    sql: `
      CREATE TABLE changes (seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, name TEXT, origin TEXT NOT NULL, at BIGINT NOT NULL);
      CREATE INDEX changes_by_at ON changes (at);
    `,
  },
  {
    // Users of the mesh, as sqlite-store.ts's version 4: a login is a "node" change of its device.
    version: 5,
    sql: `
      ALTER TABLE console_users ADD COLUMN tenant TEXT;
      ALTER TABLE console_users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE console_users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
      ALTER TABLE nodes ADD COLUMN user_name TEXT;
      ALTER TABLE nodes ADD COLUMN user_groups TEXT;
      ALTER TABLE nodes ADD COLUMN user_cert_pem TEXT;
      ALTER TABLE nodes ADD COLUMN user_not_after BIGINT;
      CREATE INDEX nodes_by_user ON nodes (user_name);
    `,
  },
  // Services published to public edges (docs/external-access.md).
  { version: 6, sql: PG_PUBLICATIONS_SQL },
  // Console logins, server-side (issue 28).
  { version: 7, sql: PG_SESSIONS_SQL },
];

const NODES_SELECT = `SELECT n.*, a.address AS overlay_address FROM nodes n
  LEFT JOIN overlay_addresses a ON a.tenant = n.tenant AND a.name = n.name`;

type Db = pg.PoolClient | pg.Pool;

/** BIGINT columns hold ms timestamps and small counters: safe as JS numbers (node-postgres gives strings). */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as any)) as typeof pg.types.getTypeParser,
};

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch { return "(unparsable URL)"; }
}

class BeyondWindow extends Error {}

export class PgStore implements Store, ChangeFeed {
  readonly feed: ChangeFeed = this;
  readonly replicaId = randomBytes(6).toString("hex");
  readonly label: string;
  private readonly pool: pg.Pool;
  private listener?: pg.Client;
  private closed = false;

  constructor(private readonly url: string) {
    this.label = `PostgreSQL at ${redactUrl(url)}`;
    this.pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000, types, options: `-c lock_timeout=${LOCK_TIMEOUT}` });
    // An idle connection the server dropped is replaced at next use; the query that needed it reports the error.
    this.pool.on("error", () => {});
  }

  /** One transaction; `changeLock` first for those that append to the change log. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, changeLock = false): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      if (changeLock) await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, CHANGE_LOCK]);
      const r = await fn(c);
      await c.query("COMMIT");
      c.release();
      return r;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      c.release(err as Error); // the connection may be broken: do not reuse it
      throw err;
    }
  }

  /** Inside a change-locked transaction: appends a change; PostgreSQL delivers the NOTIFY at commit. */
  private async logChange(c: pg.PoolClient, kind: ChangeKind, names: (string | null)[] = [null]): Promise<void> {
    await c.query(`WITH ins AS (INSERT INTO changes (kind, name, origin, at) SELECT $1, unnest($2::text[]), $3, $4 RETURNING seq)
      SELECT pg_notify($5, MAX(seq)::text) FROM ins`, [kind, names, this.replicaId, Date.now(), CHANGE_CHANNEL]);
  }

  async migrate(): Promise<number> {
    const latest = MIGRATIONS[MIGRATIONS.length - 1].version;
    try { await this.pool.query("SELECT 1"); } catch (err) {
      throw new Error(`cannot reach PostgreSQL at ${redactUrl(this.url)}: ${(err as Error).message}`);
    }
    // The lock first: a second replica starting at the same moment waits here, then finds nothing to apply.
    await this.tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, MIGRATE_LOCK]);
      await c.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
      const applied = new Set((await c.query("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)));
      const current = Math.max(0, ...applied);
      if (current > latest) throw new Error(`database schema version ${current} is newer than this server (${latest}); upgrade the server`);
      // Every version not recorded yet, not only those above the highest: migrations numbered apart can merge.
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await c.query(m.sql);
        await c.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", [m.version, Date.now()]);
      }
    });
    await this.tx(async (c) => {
      for (const n of (await c.query(`${NODES_SELECT} WHERE a.address IS NULL`)).rows) await this.overlayAddressFor(c, n.tenant, n.name, Date.now());
    }, true);
    return latest;
  }

  /** Inside a change-locked transaction: the identity's overlay address, chosen and recorded on first use. */
  private async overlayAddressFor(c: pg.PoolClient, tenant: string, name: string, now: number): Promise<string> {
    const have = (await c.query("SELECT address FROM overlay_addresses WHERE tenant = $1 AND name = $2", [tenant, name])).rows[0];
    if (have) return intToIpv4(have.address);
    const lo = preferredOverlayAddress(tenant, name), hi = lo + OVERLAY_WINDOW;
    const near = new Set<number>((await c.query("SELECT address FROM overlay_addresses WHERE address >= $1 AND address < $2", [lo, hi])).rows.map((r) => r.address));
    let ip: number;
    try {
      ip = chooseOverlayAddress(tenant, name, (a) => { if (a < lo || a >= hi) throw new BeyondWindow(); return near.has(a); });
    } catch (err) {
      if (!(err instanceof BeyondWindow)) throw err;
      const all = new Set<number>((await c.query("SELECT address FROM overlay_addresses")).rows.map((r) => r.address));
      ip = chooseOverlayAddress(tenant, name, (a) => all.has(a));
    }
    await c.query("INSERT INTO overlay_addresses (tenant, name, address, assigned_at) VALUES ($1, $2, $3, $4)", [tenant, name, ip, now]);
    return intToIpv4(ip);
  }

  async createToken(t: TokenRecord): Promise<void> {
    await this.pool.query(`INSERT INTO tokens (id, secret_hash, tenant, groups, roles, uses_left, uses_total, expires_at, cert_ttl_ms, created_at, created_by)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, [t.id, t.secretHash, t.tenant, JSON.stringify(t.groups), JSON.stringify(t.roles),
      t.usesLeft, t.usesTotal, t.expiresAt, t.certTtlMs, t.createdAt, t.createdBy]);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const r = (await this.pool.query("SELECT * FROM tokens WHERE id = $1", [id])).rows[0];
    return r ? tokenFromRow(r) : undefined;
  }

  /**
   * Group commit, as on SQLite: enrollments that arrive while a batch commits form the next batch, one
   * transaction for all (one change-lock hold, one WAL flush, one NOTIFY). Each batch's commit is serial with
   * every other change writer of every replica, so one enrollment per commit bounded the whole mesh's rate.
   */
  enroll(args: EnrollArgs): Promise<EnrollOutcome> {
    return new Promise((resolve, reject) => {
      this.enrollQueue.push({ args, resolve, reject });
      if (!this.enrolling) void this.commitEnrollments();
    });
  }

  private readonly enrollQueue: { args: EnrollArgs; resolve: (r: EnrollOutcome) => void; reject: (err: unknown) => void }[] = [];
  /** A batch is in its transaction; when it ends, the queue's next batch starts. */
  private enrolling = false;

  private async commitEnrollments(): Promise<void> {
    this.enrolling = true;
    while (this.enrollQueue.length > 0) {
      const batch = this.enrollQueue.splice(0, MAX_ENROLL_BATCH);
      try {
        const results = await this.tx(async (c) => {
          const out: EnrollOutcome[] = [];
          for (const item of batch) out.push(await this.enrollOne(c, item.args));
          const names = batch.filter((_, i) => out[i].ok).map((item) => item.args.node.name);
          if (names.length > 0) await this.logChange(c, "node", names);
          return out;
        }, true);
        batch.forEach((item, i) => item.resolve(results[i]));
      } catch (err) {
        // Nothing of the batch committed. A statement error belongs to one enrollment: each again alone, so
        // only that one fails; a lost connection fails them all.
        if (batch.length === 1 || !(err instanceof pg.DatabaseError)) { for (const item of batch) item.reject(err); continue; }
        for (const item of batch) {
          await this.tx(async (c) => {
            const r = await this.enrollOne(c, item.args);
            if (r.ok) await this.logChange(c, "node", [item.args.node.name]);
            return r;
          }, true).then(item.resolve, item.reject);
        }
      }
    }
    this.enrolling = false;
  }

  /** Inside a change-locked transaction: one enrollment's checks and writes (a refusal writes nothing). */
  private async enrollOne(c: pg.PoolClient, args: EnrollArgs): Promise<EnrollOutcome> {
    const { node, cert } = args;
    // FOR UPDATE: a replica racing for the same token waits here and then sees uses_left as this one leaves it.
    const t = (await c.query("SELECT * FROM tokens WHERE id = $1 FOR UPDATE", [args.tokenId])).rows[0];
    if (!t) return { ok: false, reason: "token_unknown", detail: TOKEN_REFUSAL.unknown };
    if (t.expires_at <= args.now) return { ok: false, reason: "token_expired", detail: TOKEN_REFUSAL.expired(t.expires_at) };
    if (t.uses_left <= 0) return { ok: false, reason: "token_used", detail: TOKEN_REFUSAL.used(t.uses_total) };
    const existing = (await c.query(`${NODES_SELECT} WHERE n.name = $1`, [node.name])).rows[0];
    if (existing && !args.nameFree(nodeFromRow(existing))) {
      return { ok: false, reason: "name_taken", detail: `name "${node.name}" is held by a live enrollment (revoke it first, or let its certificate expire)` };
    }
    await c.query("UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1", [args.tokenId]);
    await c.query(`INSERT INTO nodes (name, tenant, groups, roles, enrollment_id, status, enrolled_at, token_id, cert_ttl_ms,
      serial, cert_pem, not_after, endpoints, home_relay, nat_type, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '[]', NULL, NULL, NULL)
      ON CONFLICT (name) DO UPDATE SET tenant = EXCLUDED.tenant, groups = EXCLUDED.groups, roles = EXCLUDED.roles,
        enrollment_id = EXCLUDED.enrollment_id, status = EXCLUDED.status, enrolled_at = EXCLUDED.enrolled_at, token_id = EXCLUDED.token_id,
        cert_ttl_ms = EXCLUDED.cert_ttl_ms, serial = EXCLUDED.serial, cert_pem = EXCLUDED.cert_pem, not_after = EXCLUDED.not_after,
        endpoints = '[]', home_relay = NULL, nat_type = NULL, last_seen = NULL,
        user_name = NULL, user_groups = NULL, user_cert_pem = NULL, user_not_after = NULL`,
    [node.name, node.tenant, JSON.stringify(node.groups), JSON.stringify(node.roles), node.enrollmentId, node.status,
      node.enrolledAt, node.tokenId, node.certTtlMs, node.serial, node.certPem, node.notAfter]);
    await this.insertCert(c, cert);
    return { ok: true, overlayIp: await this.overlayAddressFor(c, node.tenant, node.name, args.now) };
  }

  private async insertCert(c: Db, x: CertRecord): Promise<void> {
    await c.query("INSERT INTO certs (serial, name, enrollment_id, not_after, issued_at, kind) VALUES ($1, $2, $3, $4, $5, $6)",
      [x.serial, x.name, x.enrollmentId, x.notAfter, x.issuedAt, x.kind]);
  }

  async renew(args: { name: string; enrollmentId: string; cert: CertRecord; certPem: string }): Promise<boolean> {
    return this.tx(async (c) => {
      const r = await c.query("UPDATE nodes SET serial = $1, cert_pem = $2, not_after = $3 WHERE name = $4 AND enrollment_id = $5 AND status = 'active'",
        [args.cert.serial, args.certPem, args.cert.notAfter, args.name, args.enrollmentId]);
      if (r.rowCount !== 1) return false;
      await this.insertCert(c, args.cert);
      await this.logChange(c, "node", [args.name]);
      return true;
    }, true);
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const r = (await this.pool.query(`${NODES_SELECT} WHERE n.name = $1`, [name])).rows[0];
    return r ? nodeFromRow(r) : undefined;
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (await this.pool.query(`${NODES_SELECT} ORDER BY n.name`)).rows.map(nodeFromRow);
  }

  async getNodes(names: string[]): Promise<NodeRecord[]> {
    return (await this.pool.query(`${NODES_SELECT} WHERE n.name = ANY($1::text[])`, [names])).rows.map(nodeFromRow);
  }

  async liveSerials(name: string, enrollmentId: string, now: number): Promise<{ serial: string; notAfter: number }[]> {
    return (await this.pool.query("SELECT serial, not_after FROM certs WHERE name = $1 AND enrollment_id = $2 AND not_after > $3", [name, enrollmentId, now]))
      .rows.map((r) => ({ serial: r.serial, notAfter: r.not_after }));
  }

  async isSerialOf(serial: string, name: string, enrollmentId: string): Promise<boolean> {
    return (await this.pool.query("SELECT 1 FROM certs WHERE serial = $1 AND name = $2 AND enrollment_id = $3", [serial, name, enrollmentId])).rowCount === 1;
  }

  async saveStatuses(updates: StatusUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    await this.tx(async (c) => {
      // One statement for the batch (a replica flushes every couple of seconds).
      await c.query(`UPDATE nodes n SET endpoints = u.endpoints, home_relay = u.home_relay, nat_type = u.nat_type, last_seen = u.last_seen
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(name, endpoints, home_relay, nat_type, last_seen)
        WHERE n.name = u.name`,
      [updates.map((u) => u.name), updates.map((u) => JSON.stringify(u.endpoints)), updates.map((u) => u.homeRelay ?? null),
        updates.map((u) => u.natType ?? null), updates.map((u) => u.lastSeen)]);
      await this.logChange(c, "status", updates.map((u) => u.name));
    }, true);
  }

  async revoke(args: { name: string; now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord | undefined> {
    return this.tx(async (c): Promise<RevocationRecord | undefined> => {
      const node = (await c.query("SELECT * FROM nodes WHERE name = $1 FOR UPDATE", [args.name])).rows[0];
      if (!node) return undefined;
      await c.query("UPDATE nodes SET status = 'revoked' WHERE name = $1", [args.name]);
      await c.query(`INSERT INTO revoked (serial, name, not_after, revoked_at)
        SELECT serial, name, not_after, $3 FROM certs WHERE name = $1 AND enrollment_id = $2 ON CONFLICT (serial) DO NOTHING`,
      [args.name, node.enrollment_id, args.now]);
      const list = await this.newList(c, args);
      await this.logChange(c, "revoke", [args.name]);
      return list;
    }, true);
  }

  async publishRevocation(args: { now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord> {
    return this.tx(async (c) => {
      const list = await this.newList(c, args);
      await this.logChange(c, "revocation");
      return list;
    }, true);
  }

  /** Inside a change-locked transaction (so two replicas never take the same number): the next signed list. */
  private async newList(c: pg.PoolClient, args: { now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord> {
    // Expired serials need no listing: the verifier already refuses expired certificates.
    const serials = (await c.query("SELECT serial, not_after FROM revoked WHERE not_after > $1", [args.now - 3_600_000])).rows
      .map((r) => ({ serial: r.serial as string, notAfter: r.not_after as number }));
    const last = Number((await c.query("SELECT MAX(number) AS n FROM revocation_lists")).rows[0].n ?? 0);
    const number = Math.max(last, args.minNumber) + 1;
    const text = args.sign(number, serials.map((s) => s.serial));
    await c.query("INSERT INTO revocation_lists (number, text, issued_at) VALUES ($1, $2, $3)", [number, text, args.now]);
    return { number, text, serials };
  }

  async getRevocation(): Promise<RevocationRecord | undefined> {
    return this.tx(async (c) => {
      const r = (await c.query("SELECT number, text FROM revocation_lists ORDER BY number DESC LIMIT 1")).rows[0];
      if (!r) return undefined;
      const serials = (await c.query("SELECT serial, not_after FROM revoked")).rows.map((s) => ({ serial: s.serial as string, notAfter: s.not_after as number }));
      return { number: r.number, text: r.text, serials };
    });
  }

  async setPolicy(p: Omit<PolicyRecord, "id">): Promise<PolicyRecord> {
    return this.tx(async (c) => {
      const r = await c.query("INSERT INTO policies (source, hash, set_at, set_by) VALUES ($1, $2, $3, $4) RETURNING id", [p.source, p.hash, p.setAt, p.setBy]);
      await this.logChange(c, "policy");
      return { ...p, id: Number(r.rows[0].id) };
    }, true);
  }

  async getPolicy(): Promise<PolicyRecord | undefined> {
    const r = (await this.pool.query("SELECT * FROM policies ORDER BY id DESC LIMIT 1")).rows[0];
    return r ? { id: r.id, source: r.source, hash: r.hash, setAt: r.set_at, setBy: r.set_by } : undefined;
  }

  async tokenGroups(): Promise<string[]> {
    const groups = new Set<string>();
    for (const r of (await this.pool.query("SELECT DISTINCT groups FROM tokens")).rows) for (const g of JSON.parse(r.groups)) groups.add(g);
    return [...groups];
  }

  async putUser(u: ConsoleUser): Promise<boolean> {
    // xmax = 0 only on a freshly inserted row: tells "created" from "replaced" in one statement.
    const r = await this.pool.query(`INSERT INTO console_users (username, password_hash, created_at, created_by, tenant, groups, disabled)
      VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by,
        tenant = EXCLUDED.tenant, groups = EXCLUDED.groups, disabled = EXCLUDED.disabled
      RETURNING (xmax = 0) AS inserted`, [u.username, u.passwordHash, u.createdAt, u.createdBy, u.tenant ?? null, JSON.stringify(u.groups ?? []), !!u.disabled]);
    return r.rows[0].inserted === true;
  }

  async getUser(username: string): Promise<ConsoleUser | undefined> {
    const r = (await this.pool.query("SELECT * FROM console_users WHERE username = $1", [username])).rows[0];
    return r ? userFromRow(r) : undefined;
  }

  async listUsers(): Promise<ConsoleUser[]> {
    return (await this.pool.query("SELECT * FROM console_users ORDER BY username")).rows.map(userFromRow);
  }

  async deleteUser(username: string): Promise<boolean> {
    return (await this.pool.query("DELETE FROM console_users WHERE username = $1", [username])).rowCount === 1;
  }

  async createConsoleSession(x: ConsoleSession): Promise<void> {
    await this.pool.query("INSERT INTO console_sessions (sid, username, method, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
      [x.sid, x.username, x.method, x.createdAt, x.expiresAt]);
  }

  async getConsoleSession(sid: string): Promise<ConsoleSession | undefined> {
    const r = (await this.pool.query("SELECT * FROM console_sessions WHERE sid = $1", [sid])).rows[0];
    return r ? sessionFromRow(r) : undefined;
  }

  async endConsoleSession(sid: string, now: number, why: string): Promise<boolean> {
    return (await this.pool.query("UPDATE console_sessions SET ended_at = $1, ended_why = $2 WHERE sid = $3 AND ended_at IS NULL", [now, why, sid])).rowCount === 1;
  }

  async endUserSessions(username: string, now: number, why: string): Promise<number> {
    return (await this.pool.query("UPDATE console_sessions SET ended_at = $1, ended_why = $2 WHERE username = $3 AND method = 'password' AND ended_at IS NULL AND expires_at > $1",
      [now, why, username])).rowCount ?? 0;
  }

  async pruneConsoleSessions(now: number): Promise<number> {
    return (await this.pool.query("DELETE FROM console_sessions WHERE expires_at <= $1", [now])).rowCount ?? 0;
  }

  async setNodeUser(args: { name: string; enrollmentId: string; user?: NodeUser }): Promise<boolean> {
    const u = args.user;
    return this.tx(async (c) => {
      const r = await c.query(`UPDATE nodes SET user_name = $1, user_groups = $2, user_cert_pem = $3, user_not_after = $4
        WHERE name = $5 AND enrollment_id = $6 AND status = 'active'`,
      [u?.name ?? null, u ? JSON.stringify(u.groups) : null, u?.certPem ?? null, u?.notAfter ?? null, args.name, args.enrollmentId]);
      if (r.rowCount !== 1) return false;
      await this.logChange(c, "node", [args.name]);
      return true;
    }, true);
  }

  async setUserDisabled(username: string, disabled: boolean): Promise<string[] | undefined> {
    return this.tx(async (c) => {
      const r = await c.query("UPDATE console_users SET disabled = $1 WHERE username = $2 AND tenant IS NOT NULL", [disabled, username]);
      if (r.rowCount !== 1) return undefined;
      return disabled ? this.clearLogins(c, "user_name = $1", username) : [];
    }, true);
  }

  async clearExpiredLogins(now: number): Promise<string[]> {
    return this.tx((c) => this.clearLogins(c, "user_not_after <= $1", now), true);
  }

  /** Inside a transaction holding the change lock: logs out the devices `where` picks, as node changes. */
  private async clearLogins(c: pg.PoolClient, where: string, arg: unknown): Promise<string[]> {
    const r = await c.query(`UPDATE nodes SET user_name = NULL, user_groups = NULL, user_cert_pem = NULL, user_not_after = NULL
      WHERE user_name IS NOT NULL AND ${where} RETURNING name`, [arg]);
    const names = r.rows.map((x) => x.name as string);
    if (names.length) await this.logChange(c, "node", names);
    return names;
  }

  async listRevoked(): Promise<{ serial: string; name: string; notAfter: number; revokedAt: number }[]> {
    return (await this.pool.query("SELECT serial, name, not_after, revoked_at FROM revoked ORDER BY revoked_at DESC")).rows
      .map((r) => ({ serial: r.serial, name: r.name, notAfter: r.not_after, revokedAt: r.revoked_at }));
  }

  async listPublications(): Promise<PublicationRecord[]> {
    return (await this.pool.query("SELECT * FROM publications ORDER BY created_at, hostname")).rows.map(publicationFromRow);
  }

  async putPublication(p: PublicationRecord): ReturnType<Store["putPublication"]> {
    return this.tx(async (c) => {
      const holder = (await c.query("SELECT node, service FROM publications WHERE hostname = $1 FOR UPDATE", [p.hostname])).rows[0];
      if (holder && (holder.node !== p.node || holder.service !== p.service)) return { ok: false as const, holder: { node: holder.node as string, service: holder.service as string } };
      await c.query("DELETE FROM publications WHERE node = $1 AND service = $2", [p.node, p.service]);
      await c.query(`INSERT INTO publications (${PUBLICATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, publicationValues(p));
      await this.logChange(c, "publication", [p.node]);
      return { ok: true as const };
    }, true);
  }

  async deletePublication(node: string, service: string): Promise<boolean> {
    return this.tx(async (c) => {
      const n = (await c.query("DELETE FROM publications WHERE node = $1 AND service = $2", [node, service])).rowCount ?? 0;
      if (n > 0) await this.logChange(c, "publication", [node]);
      return n > 0;
    }, true);
  }

  // ---- change feed -----------------------------------------------------------------------------------

  async latestSeq(): Promise<number> {
    return Number((await this.pool.query("SELECT MAX(seq) AS s FROM changes")).rows[0].s ?? 0);
  }

  async oldestSeq(): Promise<number | undefined> {
    const s = (await this.pool.query("SELECT MIN(seq) AS s FROM changes")).rows[0].s;
    return s == null ? undefined : Number(s);
  }

  async changesSince(seq: number, limit: number): Promise<Change[]> {
    return (await this.pool.query("SELECT seq, kind, name, origin, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", [seq, limit])).rows
      .map((r) => ({ seq: r.seq, kind: r.kind, origin: r.origin, at: r.at, ...(r.name != null ? { name: r.name } : {}) }));
  }

  async prune(before: number): Promise<number> {
    return (await this.pool.query("DELETE FROM changes WHERE at < $1", [before])).rowCount ?? 0;
  }

  async subscribe(onNotify: (seq: number) => void, onState: (up: boolean, err?: Error) => void): Promise<void> {
    let attempt = 0;
    const retry = (err?: Error) => {
      if (this.closed) return;
      onState(false, err);
      const delay = LISTEN_RETRY_MS[Math.min(attempt++, LISTEN_RETRY_MS.length - 1)];
      setTimeout(() => void open().catch(retry), delay).unref();
    };
    const open = async (): Promise<void> => {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000, types });
      client.on("notification", (m) => { if (m.channel === CHANGE_CHANNEL) onNotify(Number(m.payload)); });
      // Before LISTEN succeeded, a failure is the caller's (open() rejects); after, it starts a reconnect.
      let live = false;
      const lost = (err?: Error) => {
        if (!live) return;
        live = false;
        client.end().catch(() => {});
        retry(err);
      };
      client.on("error", (err) => lost(err));
      client.on("end", () => lost(new Error("connection to PostgreSQL ended")));
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANGE_CHANNEL}`);
      } catch (err) {
        client.end().catch(() => {});
        throw err;
      }
      if (this.closed) return void (await client.end().catch(() => {}));
      live = true;
      this.listener = client;
      attempt = 0;
      onState(true);
    };
    await open();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listener?.end().catch(() => {});
    await this.pool.end();
  }
}
