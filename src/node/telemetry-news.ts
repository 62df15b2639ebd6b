// Whether a telemetry batch is worth sending (pure): a resting node is quiet unless something an operator would
// want to know changed. Kept apart from the client (telemetry.ts), which only acts on the answer.
import type { PeerSnapshot, Problem } from "../wire/coord/telemetry.js";

/** A view that changed only in latency or loss figures goes at most this often (holds at rest measure RTT). */
export const LATENCY_REFRESH_MS = 300_000;

/**
 * Problems that are measurements of a live session to one peer (detail.peer): when the peer's keys expire at
 * rest the measurement stops, and the problem leaves the node's list without anything having got better.
 */
const MEASURED = new Set(["high_latency", "high_loss"]);

/** A node's view for change detection: its shape (peers' paths and states, problems) and its figures. */
export interface SentView {
  shape: string;
  at: number;
  /** Measured problems as "code peer", kept out of the shape (see hasNews). */
  measured: string[];
  /** Peers whose keys expired at rest. */
  idle: string[];
  /** The figures a refresh would carry: live peers' latency and loss, problems' wording; "" when there are none. */
  figures: string;
}

/**
 * A peer's state as news: keys expire quietly at rest (connected -> idle) and come back on the next datagram
 * (handshaking -> connected), which is no news; a refusal, an unanswered handshake or a revocation is.
 */
function troubleOf(state: string): string {
  return state === "connected" || state === "idle" || state === "handshaking" ? "ok" : state;
}

function measuredPeer(p: Problem): string | undefined {
  const peer = p.detail?.peer;
  return MEASURED.has(p.code) && typeof peer === "string" ? peer : undefined;
}

export function viewOf(snap: { peers: PeerSnapshot[]; problems: Problem[] }, at: number): SentView {
  // A problem is news by its code and severity; its wording carries figures ("high latency to srv: 603 ms"),
  // which change with every sample and on a satellite link sent a batch every beat at rest.
  const others = snap.problems.filter((x) => measuredPeer(x) === undefined);
  const shape = JSON.stringify([snap.peers.map((p) => [p.name, p.path, troubleOf(p.state)]), others.map((x) => [x.code, x.severity])]);
  const measured = snap.problems.flatMap((x) => { const peer = measuredPeer(x); return peer === undefined ? [] : [`${x.code} ${peer}`]; });
  const idle = snap.peers.filter((p) => p.state === "idle").map((p) => p.name);
  const live = snap.peers.filter((p) => p.rttMs !== undefined || p.lossPct !== undefined).map((p) => [p.name, p.rttMs, p.lossPct]);
  const figures = live.length || snap.problems.length ? JSON.stringify([live, snap.problems.map((x) => x.summary)]) : "";
  return { shape, at, measured, idle, figures };
}

/**
 * A batch is worth sending when events wait, the view's shape changed, a measured problem appeared, or one
 * cleared while its peer's session lives (the link got better). One that left with its peer's keys expiring at
 * rest is no news: on a satellite link that alone cost a fresh TLS connection three minutes into every rest.
 * Latency and loss figures alone are refreshed every refreshMs, while there are any: figures that stopped with
 * the sessions at rest are not news either (that refresh, five minutes into a rest, was the other batch).
 */
export function hasNews(queued: number, now: SentView, last: SentView, refreshMs = LATENCY_REFRESH_MS): boolean {
  if (queued > 0 || now.shape !== last.shape) return true;
  if (now.measured.some((m) => !last.measured.includes(m))) return true;
  const cleared = last.measured.filter((m) => !now.measured.includes(m));
  if (cleared.some((m) => !now.idle.includes(m.slice(m.indexOf(" ") + 1)))) return true;
  return now.figures !== "" && now.figures !== last.figures && now.at - last.at >= refreshMs;
}
