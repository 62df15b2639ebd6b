// The bounded spray (docs/nat.md "Port prediction"): when every direct candidate of a peer has been silent for
// sprayAfterMs, we sit on the relay and our own mapping is endpoint-independent, probes go to a bounded set of
// ports around the peer's candidates (punch-rules.ts sprayQueue), SPRAY_PER_TICK per path tick.
import { describeEndpoint, type Endpoint } from "../addr/endpoint.js";
import { sprayQueue } from "./punch-rules.js";
import type { PathTimers, PeerPaths } from "./path-types.js";

/** Spray probes sent per path tick: the queue drains over a few ticks instead of in one burst. */
const SPRAY_PER_TICK = 64;

/** What the spray needs of the path manager. */
export interface SprayHost {
  readonly timers: PathTimers;
  readonly log: { info(o: object, m?: string): void };
  mapping(): string | undefined;
  sendable(ep: Endpoint): boolean;
  /** Sends one spray probe to ep, remembered as the peer's spray. */
  sendProbe(s: PeerPaths, ep: Endpoint): void;
}

/** Starts or continues the peer's spray when its conditions hold; clears it once a candidate answers. */
export function sprayTick(s: PeerPaths, now: number, h: SprayHost): void {
  const onRelay = s.path?.kind === "relay";
  const anyAnswer = [...s.candidates.values()].some((c) => now - c.lastPongAt <= h.timers.pathTimeoutMs);
  if (!onRelay || anyAnswer) { s.silentSince = undefined; s.sprayQueue = undefined; return; }
  if (now < s.round.quietUntil) return;
  s.silentSince ??= now;
  if (s.sprayQueue?.length) return sendSprayBatch(s, h);
  if (h.mapping() !== "endpoint-independent" || now - s.silentSince < h.timers.sprayAfterMs) return;
  if (s.spray && now - s.spray.lastAt < h.timers.sprayEveryMs) return;
  // Targets: every direct candidate of the peer (its reflexive address among them), budget split evenly.
  const targets = [...s.candidates.values()].map((c) => c.endpoint)
    .filter((e): e is Endpoint & { kind: "udp" } => e.kind === "udp" && h.sendable(e));
  if (!targets.length) return;
  const queue = sprayQueue(targets, h.timers.sprayBudget);
  s.spray = { attempts: (s.spray?.attempts ?? 0) + 1, probes: s.spray?.probes ?? 0, lastAt: now, hit: s.spray?.hit };
  s.sprayQueue = queue;
  h.log.info({ peer: s.name, probes: queue.length, targets: targets.map(describeEndpoint) },
    "spray: bounded port prediction towards an unanswering peer");
  sendSprayBatch(s, h);
}

function sendSprayBatch(s: PeerPaths, h: SprayHost): void {
  for (const ep of s.sprayQueue!.splice(0, SPRAY_PER_TICK)) {
    h.sendProbe(s, ep);
    s.spray!.probes++;
  }
}
