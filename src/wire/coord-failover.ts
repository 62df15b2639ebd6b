// One request to whichever coordination replica can answer (`--coord URL1,URL2,...`): the pure decision of which
// failures go on to the next replica, and the loop that follows it. Shared by enrollment, renewal, the admin
// verbs and the relay's revocation poll; here rather than in src/coord so that relay/ need not import the server.
import { RequestError, ServerNotTrusted } from "../pki/mtls-client.js";

/** Socket errors of a connection that never carried the request: sending it elsewhere cannot apply it twice. */
const NEVER_SENT = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL"]);

/** The longest a client waits for a 503's Retry-After before its second pass over the replicas. */
export const MAX_RETRY_AFTER_MS = 5_000;

/**
 * Whether a failed request goes on to the next replica. 503: that replica cannot serve now (its store is
 * unreachable); another may. Any other HTTP status is the answer. No answer at all: a request that provably
 * never left (connection refused, no route, the server's certificate refused before any byte) goes on; one that
 * may have reached the server (reset, timeout) goes on only when repeating it is harmless (`idempotent`).
 */
export function goesToNextReplica(err: unknown, idempotent: boolean): boolean {
  if (err instanceof RequestError) return err.status === 503;
  if (err instanceof ServerNotTrusted) return true;
  if (NEVER_SENT.has((err as NodeJS.ErrnoException)?.code ?? "")) return true;
  return idempotent;
}

/** The wait a 503 asked for (body `retryAfterS`, which the server sends beside its Retry-After header), in ms. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof RequestError) || err.status !== 503) return undefined;
  const s = Number(err.body?.retryAfterS);
  return Number.isFinite(s) && s >= 0 ? Math.min(s * 1000, MAX_RETRY_AFTER_MS) : undefined;
}

export class ReplicasFailed extends Error {
  constructor(readonly failures: { origin: string; error: Error }[]) {
    super(`no coordination replica could answer: ${failures.map((f) => `${f.origin}: ${f.error.message}`).join("; ")}`);
  }
}

export interface FailoverOptions {
  /** Repeating the request is harmless (GET, PUT, renewal): a reset or timeout also goes to the next replica. */
  idempotent: boolean;
  /** Index of the replica asked first (the one in use); the others follow in list order. */
  start?: number;
  /** Passes over the list (default 2): when every replica failed and one asked to retry after a while, once more. */
  passes?: number;
  /** Errors that end the attempt at once whatever their kind (e.g. a trust bundle that does not match a pin). */
  final?: (err: unknown) => boolean;
  /** Told each time a replica failed and the request goes on. */
  onFailover?: (from: string, err: Error) => void;
}

/**
 * Sends `attempt` to the replicas in turn until one answers. An answer (success or a refusal) ends it; when all
 * fail, one origin rethrows its own error and several throw ReplicasFailed naming each.
 */
export async function acrossReplicas<T>(origins: string[], attempt: (origin: string, index: number) => Promise<T>, o: FailoverOptions): Promise<T> {
  const failures: { origin: string; error: Error }[] = [];
  const passes = o.passes ?? 2;
  for (let pass = 0; pass < passes; pass++) {
    let wait: number | undefined;
    for (let k = 0; k < origins.length; k++) {
      const index = ((o.start ?? 0) + k) % origins.length;
      try {
        return await attempt(origins[index], index);
      } catch (err) {
        if (o.final?.(err) || !goesToNextReplica(err, o.idempotent)) throw err;
        failures.push({ origin: origins[index], error: err as Error });
        const after = retryAfterMs(err);
        if (after !== undefined) wait = Math.min(wait ?? after, after);
        o.onFailover?.(origins[index], err as Error);
      }
    }
    // Only a pass whose replicas asked for a retry earns another (a dead list stays dead a while).
    if (wait === undefined || pass === passes - 1) break;
    await new Promise((r) => setTimeout(r, wait));
  }
  if (origins.length === 1 && failures.length) throw failures[failures.length - 1].error;
  throw new ReplicasFailed(failures);
}
