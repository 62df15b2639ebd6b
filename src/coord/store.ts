// The coordination server's persistent state behind a small interface: SQLite embedded (sqlite-store.ts),
// PostgreSQL for several active-active replicas (pg-store.ts). Every method that changes state is one transaction; methods that
// must be atomic together (consume a token + record the node + its certificate) are one method.

import type { ChangeFeed } from "./change-feed.js";

export interface TokenRecord {
  id: string;
  secretHash: string;
  tenant: string;
  groups: string[];
  roles: string[];
  usesLeft: number;
  usesTotal: number;
  expiresAt: number;
  certTtlMs: number;
  createdAt: number;
  createdBy: string;
}

export interface NodeRecord {
  name: string;
  tenant: string;
  groups: string[];
  roles: string[];
  /** Random id of this enrollment: a re-enrollment of the same name gets a new one. */
  enrollmentId: string;
  status: "active" | "revoked";
  enrolledAt: number;
  tokenId: string;
  certTtlMs: number;
  serial: string;
  certPem: string;
  notAfter: number;
  endpoints: string[];
  homeRelay?: string;
  natType?: string;
  lastSeen?: number;
  /** Overlay IPv4 address of the identity (tenant + name), for TUN mode: assigned at enrollment, never moved. */
  overlayIp?: string;
  /** The person logged in on this device (issue 15): cleared by logout, disable, expiry and re-enrollment. */
  user?: NodeUser;
}

/** A login on a device: the user certificate issued for it (bound to the device's key) and what it grants. */
export interface NodeUser { name: string; groups: string[]; certPem: string; notAfter: number }

export interface CertRecord { serial: string; name: string; enrollmentId: string; notAfter: number; issuedAt: number; kind: "enroll" | "renew" }

export interface StatusUpdate { name: string; endpoints: string[]; homeRelay?: string; natType?: string; lastSeen: number }

export type EnrollRefusal =
  | { ok: false; reason: "token_unknown" | "token_expired" | "token_used" | "name_taken"; detail: string };

export interface PolicyRecord { id: number; source: string; hash: string; setAt: number; setBy: string }

export interface RevocationRecord { number: number; text: string; serials: { serial: string; notAfter: number }[] }

/** A service published to a public edge (docs/external-access.md): SNI hostname -> the node's service. */
export interface PublicationRecord {
  hostname: string;
  tenant: string;
  node: string;
  service: string;
  port: number;
  protocol: "tcp" | "https";
  clientAuth: "none" | "cert" | "token";
  clientCaPem?: string;
  createdAt: number;
  createdBy: string;
}

/**
 * A person with a password (scrypt, src/coord/passwords.ts). Without `tenant`, a console administrator (`ember admin
 * create`); with it, a user of the mesh (`ember users add`): logs in on devices, is named by `user:` rules, holds
 * `groups`, and may use the console only to approve a device login (docs/users.md).
 */
export interface ConsoleUser {
  username: string; passwordHash: string; createdAt: number; createdBy: string;
  tenant?: string; groups?: string[]; disabled?: boolean;
}

/**
 * A console login (docs/dashboard.md): its id travels in every session token of the login (renewals keep it), so
 * ending the row ends them all. Kept until it expires (8 hours after the login), then pruned.
 */
export interface ConsoleSession {
  sid: string; username: string; method: "password" | "certificate"; createdAt: number; expiresAt: number;
  /** Set once the login ended: why (logged_out, user_deleted, user_disabled, password_replaced). */
  endedAt?: number; endedWhy?: string;
}

export type EnrollArgs = { tokenId: string; now: number; node: NodeRecord; cert: CertRecord; nameFree: (existing: NodeRecord) => boolean };
export type EnrollOutcome = { ok: true; overlayIp: string } | EnrollRefusal;

export interface Store {
  /** Set by a store that several replicas share: the log of changes each replica follows (change-feed.ts). */
  readonly feed?: ChangeFeed;
  /** What an operator calls this store, for errors ("PostgreSQL at postgres://ember@db:5432/ember"; no password). */
  readonly label: string;
  /** Applies pending schema migrations; returns the schema version. */
  migrate(): Promise<number>;
  createToken(t: TokenRecord): Promise<void>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  /**
   * Atomically: the token still exists, is unexpired and has a use left (decrement it); the name is free
   * or may be re-enrolled (decide(existing) says so); write the node and its certificate; give the identity
   * its overlay address unless it already has one (chooseOverlayAddress), and return it.
   */
  enroll(args: EnrollArgs): Promise<EnrollOutcome>;
  /** Records a renewed certificate for an active node of the given enrollment. */
  renew(args: { name: string; enrollmentId: string; cert: CertRecord; certPem: string }): Promise<boolean>;
  getNode(name: string): Promise<NodeRecord | undefined>;
  listNodes(): Promise<NodeRecord[]>;
  /** The named nodes that exist, in no particular order: one query however many (a replica's catch-up). */
  getNodes(names: string[]): Promise<NodeRecord[]>;
  /** Serials ever issued to this enrollment that are still unexpired at `now`. */
  liveSerials(name: string, enrollmentId: string, now: number): Promise<{ serial: string; notAfter: number }[]>;
  isSerialOf(serial: string, name: string, enrollmentId: string): Promise<boolean>;
  saveStatuses(updates: StatusUpdate[]): Promise<void>;
  /**
   * Atomically: marks the node revoked, adds its serials, takes the next list number (above `minNumber`),
   * and stores the list text `sign(number, serials)` produces.
   */
  revoke(args: { name: string; now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord | undefined>;
  getRevocation(): Promise<RevocationRecord | undefined>;
  /** Signs and stores a new list of the revoked serials (no node revoked): numbered max(last, minNumber) + 1. */
  publishRevocation(args: { now: number; minNumber: number; sign: (number: number, serials: string[]) => string }): Promise<RevocationRecord>;
  setPolicy(p: Omit<PolicyRecord, "id">): Promise<PolicyRecord>;
  getPolicy(): Promise<PolicyRecord | undefined>;
  /** Groups named by any token (declared groups, even before a node with them enrolls). */
  tokenGroups(): Promise<string[]>;
  /** Creates or replaces a console login; true when it is new. */
  putUser(u: ConsoleUser): Promise<boolean>;
  getUser(username: string): Promise<ConsoleUser | undefined>;
  listUsers(): Promise<ConsoleUser[]>;
  deleteUser(username: string): Promise<boolean>;
  /** Records (or with `user` undefined, clears) who is logged in on an active node of this enrollment. */
  setNodeUser(args: { name: string; enrollmentId: string; user?: NodeUser }): Promise<boolean>;
  /** Disables or enables a mesh user; disabling also logs them out everywhere. The devices logged out, or undefined: no such user. */
  setUserDisabled(username: string, disabled: boolean): Promise<string[] | undefined>;
  /** Clears logins whose user certificate expired by `now`; the devices logged out. */
  clearExpiredLogins(now: number): Promise<string[]>;
  /** Console logins (server-side sessions): recorded at login, looked up on every console request. */
  createConsoleSession(s: ConsoleSession): Promise<void>;
  getConsoleSession(sid: string): Promise<ConsoleSession | undefined>;
  /** Ends one login (logout); false when there is no such live login. */
  endConsoleSession(sid: string, now: number, why: string): Promise<boolean>;
  /**
   * Ends every live password login of a user (deleted, disabled, password replaced); how many. A certificate
   * login of an identity with the same name is not the user's.
   */
  endUserSessions(username: string, now: number, why: string): Promise<number>;
  /** Forgets logins expired before `now`; how many. */
  pruneConsoleSessions(now: number): Promise<number>;
  /** Every revoked serial with its node and when it was revoked (newest first). */
  listRevoked(): Promise<{ serial: string; name: string; notAfter: number; revokedAt: number }[]>;
  /** Publications to public edges, oldest first. */
  listPublications(): Promise<PublicationRecord[]>;
  /**
   * Atomically replaces the node's publication of that service; refused (with the holder) when another
   * node's service holds the hostname.
   */
  putPublication(p: PublicationRecord): Promise<{ ok: true } | { ok: false; holder: { node: string; service: string } }>;
  deletePublication(node: string, service: string): Promise<boolean>;
  close(): Promise<void>;
}
