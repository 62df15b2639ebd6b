// Coordination server logging: pino JSON lines on stderr, written synchronously so the line for an
// acknowledged change is on disk before a crash could take it.
import { pino, type Logger } from "pino";

export function createLogger(level = process.env.EMBER_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { svc: "coord" }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that discards everything (benchmarks, in-process tests that assert on behaviour only). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
