// The common failures, each detected from facts the daemon already has and named with its fix
// (docs/diagnostics.md). diagnose() is pure: facts in, problems out, so every rule is unit-tested and the
// same words appear in `ember status`, `ember netcheck --state` and on the console's node page.
import type { Problem } from "../coord/telemetry-protocol.js";
import type { NearestRule } from "../policy/index.js";
import { classifyConnectError, describeConnectFailure, urlTarget } from "../net/connect-errors.js";

export type { Problem };

/** Named thresholds, each with its reason. */
export const DIAG = {
  /** Above this the path is slow for interactive use (a transatlantic RTT is ~80-100 ms). */
  highLatencyMs: 250,
  /** Above this TCP-in-the-mesh throughput collapses (the stream layer halves its window per loss). */
  highLossPct: 5,
  /** The PKI verifier's skew allowance is 30 s: beyond it certificates look not yet valid or expired. */
  clockErrorMs: 30_000,
  /** Beyond this the clock is worth fixing before it matters. */
  clockWarnMs: 5_000,
  /** Denied flows are shown for this long after the last one. */
  deniedWindowMs: 10 * 60_000,
} as const;

export interface DeniedFlow { flow: string; from: string; to: string; port: number; protocol: string; reason: string; side: string; at: number; count: number; nearest?: NearestRule }

export interface DiagnosisFacts {
  now: number;
  coordUrl?: string;
  /** The map stream: connected now, and the last error while it was not. */
  coord?: { connected: boolean; lastError?: string; since?: number };
  relays: { name: string; host: string; port: number; connected: boolean; lastError?: string }[];
  /** netcheck's mapping ("udp-blocked" when no STUN server answered on the node's socket). */
  natType?: string;
  stunServers: string[];
  peers: { name: string; path: string; rttMs?: number; lossPct?: number }[];
  /** Our clock minus the coordination server's, measured (ms), and how. */
  clock?: { offsetMs: number; measuredAt: number; via: string };
  /** Our certificate's validity by our own clock. */
  certificate?: { notBefore: number; notAfter: number; problem?: string };
  denied: DeniedFlow[];
}


export function fmtOffset(ms: number): string {
  const s = Math.abs(ms) / 1000;
  const text = s >= 120 ? `${(s / 60).toFixed(1)} min (${s.toFixed(1)} s)` : `${s.toFixed(1)} s`;
  return `${text} ${ms < 0 ? "behind" : "ahead of"}`;
}

export function diagnose(f: DiagnosisFacts): Problem[] {
  const out: Problem[] = [];
  const coordDown = f.coord !== undefined && !f.coord.connected;
  const relaysDown = f.relays.length > 0 && f.relays.every((r) => !r.connected);
  const clockBad = f.clock !== undefined && Math.abs(f.clock.offsetMs) > DIAG.clockErrorMs;

  // Clock skew first: it explains TLS and certificate failures, which would otherwise look like a network fault.
  if (f.clock && Math.abs(f.clock.offsetMs) > DIAG.clockWarnMs) {
    const certSays = f.certificate?.problem ? `; certificates look ${f.certificate.problem.replaceAll("_", " ")} by this clock` : "";
    out.push({
      code: "clock_skew", severity: clockBad ? "error" : "warning",
      summary: `this host's clock is ${fmtOffset(f.clock.offsetMs)} the coordination server's (measured ${new Date(f.clock.measuredAt).toISOString()} via ${f.clock.via})${certSays}`,
      fix: "synchronise the clock with NTP: timedatectl set-ntp true (systemd-timesyncd) or enable chronyd/ntpd, then restart ember; certificates allow only 30 s of skew",
      detail: { offsetMs: Math.round(f.clock.offsetMs), measuredAt: f.clock.measuredAt },
    });
  } else if (f.certificate?.problem) {
    out.push({
      code: "certificate_invalid", severity: "error",
      summary: `this node's certificate is ${f.certificate.problem.replaceAll("_", " ")} (valid ${new Date(f.certificate.notBefore).toISOString()} to ${new Date(f.certificate.notAfter).toISOString()})`,
      fix: f.certificate.problem === "expired" ? "the node could not renew in time: check it reaches the coordination server, or enroll it again with a new token" : "check this host's clock (NTP)",
    });
  }

  if (coordDown && !clockBad) {
    const err = f.coord!.lastError ?? "";
    const kind = err ? classifyConnectError(err) : "timeout";
    const target = urlTarget(f.coordUrl);
    const relays = f.relays.map((r) => `${r.host}:${r.port}`);
    if (kind === "other") {
      out.push({
        code: "coord_refused", severity: "error",
        summary: `the coordination server ${target} refuses this node: ${err}`,
        fix: "read the reason: revoked or not enrolled needs a new enrollment token (ember up --token); a certificate problem needs the clock checked",
        detail: { error: err },
      });
    } else if (relaysDown && kind !== "dns" && kind !== "tls") {
      // Every server fails alike (dropped, or rejected by a firewall that answers with a reset): the network, not one server.
      // A refusal from all of them is a firewall that rejects, or servers that are all down: both are named.
      const ports = [...new Set([target, ...relays].map((t) => t.split(":").pop()))].join(", ");
      const refused = kind === "refused";
      out.push({
        code: "coord_unreachable", severity: "error",
        summary: `outbound TCP ${ports} looks blocked${refused ? ", or none of the servers runs" : ""}: the coordination server ${target} and the relays ${relays.join(", ")} are unreachable (${err || "no answer"}); running on the cached peer map`,
        fix: `${refused ? `check that the servers run (curl -k https://${target}/v1/health from another host); if they do, ` : ""}allow outbound TCP to ${[target, ...relays].join(", ")} in the host and network firewalls (or the HTTPS proxy); then the node reconnects by itself`,
        detail: { error: err, kind, coord: target, relays },
      });
    } else {
      // One server fails while the network works (relays answer, or there are none to compare): say what it did.
      const d = describeConnectFailure(kind, "the coordination server", target, err || "no answer");
      out.push({
        code: "coord_unreachable", severity: "error",
        summary: `${d.cause}${f.relays.length ? " while relays answer" : ""}: peers keep working on the cached map, but no changes, rotations or revocations arrive`,
        fix: `${d.fix}; the node reconnects by itself`,
        detail: { error: err, kind, coord: target },
      });
    }
  }

  if (f.natType === "udp-blocked") {
    const viaRelay = f.peers.filter((p) => p.path.startsWith("relay")).length;
    out.push({
      code: "udp_blocked", severity: "warning",
      summary: `UDP is blocked: no STUN server answered on the node's socket (${f.stunServers.join(", ") || "the relays' STUN ports"}); every peer goes through a relay over TCP 443 (${viaRelay} now)`,
      fix: "allow outbound UDP (to the relays' STUN port 3478 and to peers' overlay ports) in the firewall for direct paths; relay-only works, with more latency and less throughput",
      detail: { stunServers: f.stunServers, relayedPeers: viaRelay },
    });
  }

  for (const p of f.peers) {
    if (p.rttMs !== undefined && p.rttMs > DIAG.highLatencyMs) {
      out.push({
        code: "high_latency", severity: "warning",
        summary: `high latency to ${p.name}: ${p.rttMs.toFixed(0)} ms on ${p.path} (threshold ${DIAG.highLatencyMs} ms)`,
        fix: p.path.startsWith("relay") ? `the path goes through relay ${p.path.slice(6)}: allow UDP for a direct path, or deploy a relay nearer to both nodes` : "the direct path itself is slow: check the network between the two nodes (traceroute), or its load",
        detail: { peer: p.name, path: p.path, rttMs: p.rttMs },
      });
    }
    if (p.lossPct !== undefined && p.lossPct > DIAG.highLossPct) {
      out.push({
        code: "high_loss", severity: "warning",
        summary: `packet loss to ${p.name}: ${p.lossPct.toFixed(1)}% on ${p.path} (threshold ${DIAG.highLossPct}%)`,
        fix: "find the lossy link (mtr to the peer's address), check Wi-Fi and saturated uplinks; the relay path is an alternative while it lasts",
        detail: { peer: p.name, path: p.path, lossPct: p.lossPct },
      });
    }
  }

  for (const d of f.denied) {
    if (f.now - d.at > DIAG.deniedWindowMs) continue;
    const near = d.nearest ? `; nearest rule ${d.nearest.rule.index} (line ${d.nearest.rule.line}) ${d.nearest.rule.text}: ${d.nearest.differences.join("; ")}` : "; no rule concerns this flow";
    out.push({
      code: "policy_missing", severity: "warning",
      summary: `flow ${d.flow} denied by policy (${d.reason}, ${d.count}x, ${d.side} side)${near}`,
      fix: `add or widen a rule allowing ${d.from} -> ${d.to} on ${d.protocol} ${d.port}, then: ember policy check --from ${d.from} --to ${d.to}:${d.port}/${d.protocol}`,
      detail: { flow: d.flow, nearest: d.nearest },
    });
  }
  return out;
}

/**
 * Our clock minus the coordination server's, from one unauthenticated GET /v1/health (its `time` field, ms;
 * the midpoint of the round trip is taken as the moment it was read). Used for diagnosis only: nothing is
 * trusted because of it except the widened skew of the one failure report in reportStartFailure().
 */
export async function measureClockOffset(coordUrl: string, timeoutMs = 5_000): Promise<{ offsetMs: number; rttMs: number; measuredAt: number; via: string }> {
  const { request } = await import("node:https");
  const url = new URL("/v1/health", coordUrl);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = request(url, { method: "GET", rejectUnauthorized: false, timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => { if (body.length < 4096) body += c; });
      res.on("end", () => {
        const t1 = Date.now();
        let serverTime: number | undefined;
        try { serverTime = Number(JSON.parse(body).time); } catch { serverTime = undefined; }
        if (!serverTime || !Number.isFinite(serverTime)) {
          const date = Date.parse(String(res.headers.date ?? ""));
          if (!Number.isFinite(date)) return reject(new Error("the coordination server sent no time"));
          serverTime = date + 500; // HTTP Date has 1 s resolution
        }
        resolve({ offsetMs: (t0 + t1) / 2 - serverTime, rttMs: t1 - t0, measuredAt: t1, via: `GET ${url.origin}/v1/health` });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
