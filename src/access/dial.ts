// Name to flow, shared by the proxy and the forwards: resolve the name, dial the target, and never wait
// longer than a deadline of our own, whatever the Dialer does. A dial that settles after its deadline
// has its stream destroyed, so no flow is left open for a client that is gone.
import type { Duplex } from "node:stream";
import { DIAL_TIMEOUT_MS } from "./limits.js";
import { resolveName } from "./names.js";
import { DialError, type AccessProtocol, type Dialer, type Directory, type Target } from "./types.js";

export interface Dialled { target: Target; why: string; stream: Duplex }

/** Resolves and dials; rejects with DialError (a resolution failure carries its own code and reason). */
export async function resolveAndDial(host: string, port: number | undefined, protocol: AccessProtocol, dir: Directory, dialer: Dialer,
  timeoutMs = DIAL_TIMEOUT_MS): Promise<Dialled> {
  const r = resolveName(host, port, protocol, dir);
  if (!r.ok) throw new DialError(r.code, r.reason);
  const stream = await dialWithin(dialer, r.target, timeoutMs);
  return { target: r.target, why: r.why, stream };
}

export function dialWithin(dialer: Dialer, target: Target, timeoutMs = DIAL_TIMEOUT_MS): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new DialError("timeout", `no answer from ${target.peer} within ${Math.round(timeoutMs / 100) / 10} s`));
    }, timeoutMs);
    let pending: Promise<Duplex>;
    try {
      pending = Promise.resolve(dialer.dial(target));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then((stream) => {
      // From here until its owner splices it, nobody listens for the stream's errors: an early reset
      // must not become an uncaught exception. The owner's pipeline sees the stream destroyed.
      stream.on("error", () => undefined);
      if (settled) return void stream.destroy();
      settled = true;
      clearTimeout(timer);
      resolve(stream);
    }, (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** "db-1:5432/tcp (service postgres)" for logs. */
export function describeTarget(t: Target): string {
  return `${t.peer}.${t.tenant}:${t.port}/${t.protocol}${t.service ? ` (service ${t.service})` : ""}`;
}
