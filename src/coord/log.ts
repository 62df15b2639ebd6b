// Coordination server logging: JSON lines (pino's format) on stderr, written synchronously so the line for an
// acknowledged change is on disk before a crash could take it.
import type { Logger } from "pino";
import { createJsonLogger } from "../log/json-logger.js";

export function createLogger(level = process.env.EMBER_LOG_LEVEL ?? "info"): Logger {
  return createJsonLogger({ level, base: { svc: "coord" }, isoTime: true, destination: 2 });
}

/** A logger that discards everything (benchmarks, in-process tests that assert on behaviour only). */
export function silentLogger(): Logger {
  return createJsonLogger({ level: "silent" });
}
