// Admission control for a TLS listener (the relay and the coordination server), applied to the raw TCP
// socket before TLS starts. Anyone who can reach the port can open connections without any credential, so
// every accepted socket counts, from accept to close:
//   - against a total limit, clamped below the process's file-descriptor limit, so accept() never hits
//     EMFILE (libuv then accepts and drops every incoming connection, valid nodes included);
//   - while it is not yet authenticated ("pending": TCP up, TLS not finished or the client not verified),
//     against a separate, smaller budget; when the budget or the total is full, the OLDEST pending
//     socket is evicted to admit the new one, so a flood of idle sockets can delay a valid node's
//     handshake by at most the time the flood takes to refill the budget, never lock it out;
//   - against a per-source-address pending limit (IPv4 address, IPv6 /64), so one address cannot hold the
//     whole pending budget;
//   - against a deadline: a socket still pending this long after accept is destroyed (Node's tls.Server
//     emits "TLS handshake timeout" but leaves the socket open).
// Authenticated sockets are never evicted; when every slot holds one, new connections are refused.
import { sourceKey } from "../addr/source-key.js";
import { readFileSync } from "node:fs";
import type { Server, Socket } from "node:net";

/** Descriptors kept free for everything else the process opens (stdio, epoll, files, outbound sockets, STUN). */
export const FD_RESERVE = 64;

export interface ConnectionGuardLimits {
  /** All accepted TCP connections, authenticated or not. */
  maxConnections: number;
  /** Of those, not yet authenticated. */
  maxPending: number;
  /** Pending connections from one source address (IPv4 address, IPv6 /64). */
  maxPendingPerSource: number;
  /** A connection not authenticated this long after accept is destroyed. */
  pendingDeadlineMs: number;
}

export type GuardEvent = "capacity" | "per_source_limit" | "evicted" | "deadline";

export interface GuardSnapshot {
  connections: number;
  pending: number;
  authenticated: number;
  maxConnections: number;
  maxPending: number;
  maxPendingPerSource: number;
  pendingDeadlineMs: number;
  /** The process's open-file limit as read at start (undefined off Linux). */
  fdLimit?: number;
  peakConnections: number;
  peakPending: number;
  accepted: number;
  /** Connections closed or refused by the guard, by reason. */
  dropped: Record<GuardEvent, number>;
}

interface Entry {
  key: string;
  source: string;
  pending: boolean;
  /** The pending deadline; undefined once cleared, so a long-lived connection does not keep the dead timer. */
  timer: NodeJS.Timeout | undefined;
}

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits (Node has no getrlimit). */
export function readFdLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (!m || m[1] === "unlimited") return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * The limits actually applied: the total is clamped to the descriptor limit minus FD_RESERVE (never below
 * 8), and the pending budget to half of the total, so authenticated connections always keep room.
 */
export function effectiveLimits(l: ConnectionGuardLimits, fdLimit: number | undefined): ConnectionGuardLimits & { clampedBy?: string } {
  let maxConnections = l.maxConnections;
  let clampedBy: string | undefined;
  if (fdLimit !== undefined && maxConnections > fdLimit - FD_RESERVE) {
    maxConnections = Math.max(8, fdLimit - FD_RESERVE);
    clampedBy = `open-file limit ${fdLimit} (ulimit -n) minus ${FD_RESERVE} reserved`;
  }
  const maxPending = Math.max(1, Math.min(l.maxPending, Math.floor(maxConnections / 2)));
  const maxPendingPerSource = Math.max(1, Math.min(l.maxPendingPerSource, maxPending));
  return { maxConnections, maxPending, maxPendingPerSource, pendingDeadlineMs: l.pendingDeadlineMs, clampedBy };
}

export class ConnectionGuard {
  readonly limits: ConnectionGuardLimits & { clampedBy?: string };
  readonly fdLimit?: number;
  private readonly entries = new Map<Socket, Entry>();
  /** Pending sockets in accept order: the first is the oldest, evicted first. */
  private readonly pendingOrder = new Set<Socket>();
  private readonly pendingBySource = new Map<string, number>();
  /** remoteAddress|remotePort -> raw socket, to find the raw socket of a TLSSocket. */
  private readonly byKey = new Map<string, Socket>();
  private pendingCount = 0;
  private peakConnections = 0;
  private peakPending = 0;
  private accepted = 0;
  private readonly dropped: Record<GuardEvent, number> = { capacity: 0, per_source_limit: 0, evicted: 0, deadline: 0 };

  /** onDrop is told of every socket the guard refuses or closes (for counters and rate-limited logs). */
  /** fdLimit: the descriptor limit to stay under (default: this process's, read from /proc); null for none. */
  constructor(limits: ConnectionGuardLimits, private readonly onDrop: (event: GuardEvent, source: string) => void = () => {}, fdLimit: number | null = readFdLimit() ?? null) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`connection limit ${k} must be a positive number, got ${v}`);
    }
    this.fdLimit = fdLimit ?? undefined;
    this.limits = effectiveLimits(limits, this.fdLimit);
  }

  /**
   * Puts the guard in front of the server's own "connection" listeners (tls.Server wraps the raw socket in
   * a TLSSocket there): a refused socket is destroyed before TLS ever sees it. Call before listen().
   */
  attach(server: Server): void {
    const inner = server.listeners("connection") as ((s: Socket) => void)[];
    server.removeAllListeners("connection");
    server.on("connection", (raw: Socket) => {
      if (!this.admit(raw)) return;
      for (const f of inner) f.call(server, raw);
    });
  }

  /**
   * Marks the connection authenticated: it leaves the pending budget and its deadline. Accepts the raw
   * socket or the TLSSocket wrapping it. False when the guard does not know the socket (already closed).
   */
  authenticate(socket: Socket): boolean {
    const raw = this.rawOf(socket);
    const e = raw && this.entries.get(raw);
    if (!raw || !e) return false;
    if (e.pending) this.unpend(raw, e);
    return true;
  }

  /** True while the socket (raw or TLS) is known and not yet authenticated. */
  isPending(socket: Socket): boolean {
    const raw = this.rawOf(socket);
    return !!raw && !!this.entries.get(raw)?.pending;
  }

  snapshot(): GuardSnapshot {
    const { maxConnections, maxPending, maxPendingPerSource, pendingDeadlineMs } = this.limits;
    return {
      connections: this.entries.size, pending: this.pendingCount, authenticated: this.entries.size - this.pendingCount,
      maxConnections, maxPending, maxPendingPerSource, pendingDeadlineMs, fdLimit: this.fdLimit,
      peakConnections: this.peakConnections, peakPending: this.peakPending, accepted: this.accepted, dropped: { ...this.dropped },
    };
  }

  /** Destroys every pending socket and stops the deadline timers (server shutdown). */
  close(): void {
    for (const raw of [...this.pendingOrder]) raw.destroy();
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  // ---- admission ---------------------------------------------------------------------------------------

  private admit(raw: Socket): boolean {
    const source = sourceKey(raw.remoteAddress);
    const { maxConnections, maxPending, maxPendingPerSource } = this.limits;
    if ((this.pendingBySource.get(source) ?? 0) >= maxPendingPerSource) return this.refuse(raw, "per_source_limit", source);
    // Make room: the total first (only pending sockets may be evicted), then the pending budget.
    while (this.entries.size >= maxConnections || this.pendingCount >= maxPending) {
      const oldest = this.pendingOrder.values().next().value as Socket | undefined;
      if (!oldest) return this.refuse(raw, "capacity", source);
      this.drop(oldest, "evicted");
    }
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    const e: Entry = { key, source, pending: true, timer: undefined };
    this.entries.set(raw, e);
    this.byKey.set(key, raw);
    this.pendingOrder.add(raw);
    this.pendingCount++;
    this.pendingBySource.set(source, (this.pendingBySource.get(source) ?? 0) + 1);
    this.accepted++;
    this.peakConnections = Math.max(this.peakConnections, this.entries.size);
    this.peakPending = Math.max(this.peakPending, this.pendingCount);
    e.timer = setTimeout(() => { if (e.pending) this.drop(raw, "deadline"); }, this.limits.pendingDeadlineMs);
    e.timer.unref();
    raw.once("close", () => this.forget(raw));
    return true;
  }

  private refuse(raw: Socket, event: GuardEvent, source: string): false {
    this.dropped[event]++;
    raw.destroy();
    this.onDrop(event, source);
    return false;
  }

  /** Closes a tracked socket now and forgets it (its descriptor is released synchronously by destroy()). */
  private drop(raw: Socket, event: GuardEvent): void {
    const e = this.entries.get(raw);
    this.dropped[event]++;
    this.forget(raw);
    raw.destroy();
    this.onDrop(event, e?.source ?? "?");
  }

  private forget(raw: Socket): void {
    const e = this.entries.get(raw);
    if (!e) return;
    clearTimeout(e.timer);
    if (e.pending) this.unpend(raw, e);
    this.entries.delete(raw);
    if (this.byKey.get(e.key) === raw) this.byKey.delete(e.key);
  }

  private unpend(raw: Socket, e: Entry): void {
    e.pending = false;
    clearTimeout(e.timer);
    e.timer = undefined;
    this.pendingOrder.delete(raw);
    this.pendingCount--;
    const n = (this.pendingBySource.get(e.source) ?? 1) - 1;
    if (n <= 0) this.pendingBySource.delete(e.source);
    else this.pendingBySource.set(e.source, n);
  }

  private rawOf(socket: Socket): Socket | undefined {
    if (this.entries.has(socket)) return socket;
    return this.byKey.get(`${socket.remoteAddress}|${socket.remotePort}`);
  }
}

/**
 * Logs guard drops without letting a flood flood the log: the first drop of each kind is logged at once,
 * then at most one summary line per interval with the count and the busiest source.
 */
export class DropLog {
  private readonly pending = new Map<GuardEvent, { count: number; sources: Map<string, number> }>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly write: (fields: Record<string, unknown>, msg: string) => void, private readonly intervalMs = 5_000) {}

  note(event: GuardEvent, source: string): void {
    let p = this.pending.get(event);
    if (!p) {
      p = { count: 0, sources: new Map() };
      this.pending.set(event, p);
      if (!this.timer) {
        this.write({ event: "connection_dropped", reason: event, source, count: 1 }, MESSAGES[event]);
        this.timer = setTimeout(() => this.flush(), this.intervalMs);
        this.timer.unref();
        return;
      }
    }
    p.count++;
    if (p.sources.size < 1_000 || p.sources.has(source)) p.sources.set(source, (p.sources.get(source) ?? 0) + 1);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    let any = false;
    for (const [event, p] of this.pending) {
      if (p.count === 0) continue;
      any = true;
      const top = [...p.sources].sort((a, b) => b[1] - a[1])[0];
      this.write({ event: "connection_dropped", reason: event, count: p.count, sources: p.sources.size, topSource: top?.[0], topCount: top?.[1], windowMs: this.intervalMs }, MESSAGES[event]);
    }
    this.pending.clear();
    if (any) { this.timer = setTimeout(() => this.flush(), this.intervalMs); this.timer.unref(); }
  }
}

const MESSAGES: Record<GuardEvent, string> = {
  capacity: "connection refused: every connection slot holds an authenticated connection",
  per_source_limit: "connection refused: too many unauthenticated connections from this source",
  evicted: "oldest unauthenticated connection closed to admit a new one",
  deadline: "connection closed: not authenticated by the handshake deadline",
};
