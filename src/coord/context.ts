// What every part of the coordination server shares (server.ts builds it once): the CA and verifier, the store,
// the live peer maps, the logs, the counted events. Each piece of mutable state has one owner beside it: the
// policy in force (policy-admin.ts), the revocation list (revocation.ts), unsaved node statuses (node-status.ts).
import type { Logger } from "pino";
import type { CaMaterial, Verifier } from "../pki/index.js";
import type { AuditLog } from "./audit.js";
import type { MapHub } from "./map-hub.js";
import type { Store } from "./store.js";

/** Counted events, for metrics (ember_coord_events_total). */
export interface CoordCounters { enrollments: number; renewals: number; revocations: number; policy_changes: number }

export interface CoordContext {
  readonly log: Logger;
  readonly ca: CaMaterial;
  readonly verifier: Verifier;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly counters: CoordCounters;
  /** The peer maps (made at start, after the stored policy and revocations are read). */
  hub(): MapHub;
  /** Runs one map change and records how long its fan-out to the connected nodes took. */
  timePush(change: string, fn: () => void): void;
}
