// Protocol versions: what every party (node, relay, coordination server) announces, and what each version
// added. One integer, as Tailscale's capability version: a party that sees an older version speaks the older
// dialect, and a newer party is never sent a message an older one cannot read. docs/decisions.md "Compatibility
// window" has the rule; CHANGELOG.md has the release each version shipped in.

/** The protocol this release speaks. Bump it with every change on the wire, and add a FEATURES entry. */
export const PROTOCOL_VERSION = 2;

/**
 * A party that announces nothing speaks protocol 1: release 0.1.0, before versions were announced. Its
 * handshake payload, status reports, map requests and relay connections carry no version.
 */
export const UNANNOUNCED_PROTOCOL = 1;

/**
 * The oldest protocol this release interoperates with fully (sessions, direct paths, relay, streams, policy,
 * revocation, telemetry): the previous release's (N-1). An older peer is still tried, with a warning.
 */
export const OLDEST_COMPATIBLE_PROTOCOL = PROTOCOL_VERSION - 1;

/** What each protocol version added, by the version that first has it. */
export const FEATURES = {
  /** Handshake payloads, status reports, map requests and relay connections say who speaks which protocol. */
  "version-announce": 2,
  /**
   * Unknown messages are counted and logged, never fatal: an unknown inner kind, map frame kind, relay frame
   * type or telemetry event kind is skipped (protocol 1 closes a map stream or a relay connection over one).
   */
  "tolerant-decoders": 2,
} as const;
export type Feature = keyof typeof FEATURES;

/** Features a party of this protocol lacks, in FEATURES order (empty for one as new as us or newer). */
export function missingFeatures(protocol: number): Feature[] {
  return (Object.keys(FEATURES) as Feature[]).filter((f) => FEATURES[f] > protocol);
}

/** Whether a party may be sent what `feature` needs. */
export function speaks(protocol: number, feature: Feature): boolean {
  return protocol >= FEATURES[feature];
}

/** Largest protocol number accepted in an announcement (bounds a hostile value; far beyond any real release). */
export const MAX_PROTOCOL_VERSION = 65_535;
/** Software versions travel as short strings ("0.2.0", "0.3.0-rc.1"). */
export const MAX_SOFTWARE_VERSION_CHARS = 32;

/** A party's announced version, for logs: "protocol 2, ember 0.2.0" or "protocol 1 (announced nothing: 0.1.x)". */
export function describeVersion(protocol: number, software?: string): string {
  if (software) return `protocol ${protocol}, ember ${software}`;
  return protocol === UNANNOUNCED_PROTOCOL ? "protocol 1 (announced nothing: ember 0.1.x)" : `protocol ${protocol}`;
}

/** The protocol in an announcement, or UNANNOUNCED_PROTOCOL when it is absent or not a sane integer. */
export function announcedProtocol(x: unknown): number {
  const n = typeof x === "string" && /^\d{1,5}$/.test(x) ? Number(x) : x;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_PROTOCOL_VERSION ? n : UNANNOUNCED_PROTOCOL;
}

/** A software version string as announced, or undefined when absent or not a short printable string. */
export function announcedSoftware(x: unknown): string | undefined {
  return typeof x === "string" && x.length > 0 && x.length <= MAX_SOFTWARE_VERSION_CHARS && /^[0-9A-Za-z.+-]+$/.test(x) ? x : undefined;
}

/** HTTP headers a node sends the coordination server and the server answers with (map stream, every call). */
export const VERSION_HEADERS = { protocol: "x-ember-protocol", software: "x-ember-version" } as const;

/** A node's version for tables (`ember nodes list`, the console): "0.2.0 (protocol 2)", "0.1.x (protocol 1)", "-" before any report. */
export function versionLabel(n: { protocol?: number; version?: string }): string {
  if (n.protocol === undefined) return "-";
  return `${n.version ?? (n.protocol === UNANNOUNCED_PROTOCOL ? "0.1.x" : "?")} (protocol ${n.protocol})`;
}
