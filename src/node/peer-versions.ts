// Peers older than this release (docs/decisions.md "Compatibility window"): each one that lacks a feature of
// ours is a warning in `ember status` naming what it lacks and that the next release will not talk to it.
// Pure: versions in, problems out.
import type { Problem } from "../wire/coord/telemetry.js";
import { OLDEST_COMPATIBLE_PROTOCOL, PROTOCOL_VERSION, describeVersion, missingFeatures } from "../wire/protocol.js";

/** A peer's version as its last handshake announced it. */
export interface PeerVersionFact { name: string; protocol: number; software?: string }

export function outdatedPeers(peers: PeerVersionFact[]): Problem[] {
  const out: Problem[] = [];
  for (const p of peers) {
    const lacks = missingFeatures(p.protocol);
    if (lacks.length === 0) continue;
    const outside = p.protocol < OLDEST_COMPATIBLE_PROTOCOL;
    out.push({
      code: "peer_outdated", severity: outside ? "error" : "warning",
      summary: `peer ${p.name} runs ${describeVersion(p.protocol, p.software)}: too old for ${lacks.join(", ")}` +
        (outside ? ` and outside this release's compatibility window (protocol ${OLDEST_COMPATIBLE_PROTOCOL}-${PROTOCOL_VERSION})` : ""),
      fix: outside ? `upgrade ${p.name} now: only the previous release is promised to interoperate`
        : `upgrade ${p.name} to this release before the next one: a release talks to the one before it only (N-1)`,
      detail: { peer: p.name, protocol: p.protocol, software: p.software, lacks },
    });
  }
  return out;
}
