// JSON-lines logging for the daemons (node, relay, coordination server): pino's line format and the part of
// its API EmberNet uses (levels, child bindings, flush), written synchronously to a file descriptor. pino and its
// transport machinery cost each daemon about 5 MB of resident memory at start (docs/performance.md "Memory"),
// more than everything else a small node needs; the type stays pino's `Logger`, so every module and test that
// takes a pino logger takes this one.
import { closeSync, openSync, writeSync } from "node:fs";
import type { Logger } from "pino";

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type LevelName = keyof typeof LEVELS;
const SILENT = Infinity;

export interface JsonLoggerOptions {
  /** A level name, or "silent". */
  level?: string;
  /** Fields on every line (pino's `base`), after level and time. */
  base?: Record<string, unknown>;
  /** ISO-8601 times (pino.stdTimeFunctions.isoTime) instead of epoch milliseconds. */
  isoTime?: boolean;
  /** A file descriptor (default 2, stderr), a file path (appended), or a function taking each line. */
  destination?: number | string | ((line: string) => void);
}

interface Sink { write(line: string): void; close(): void }

function sinkFor(dest: JsonLoggerOptions["destination"]): Sink {
  if (typeof dest === "function") return { write: dest, close() {} };
  const fd = typeof dest === "string" ? openSync(dest, "a") : dest ?? 2;
  return {
    write(line) {
      try { writeSync(fd, line); } catch { /* a closed or full log must not take the daemon down */ }
    },
    close() { if (typeof dest === "string") try { closeSync(fd); } catch { /* already closed */ } },
  };
}

/** Errors as pino's std serializer shows them: type, message, stack. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack };
  if (typeof value === "bigint") return value.toString();
  return value;
}

function stringify(o: Record<string, unknown>): string {
  try {
    return JSON.stringify(o, replacer);
  } catch {
    return JSON.stringify({ level: o.level, time: o.time, msg: o.msg, logError: "unserializable log fields" });
  }
}

class JsonLogger {
  private threshold: number;

  constructor(private readonly sink: Sink, private readonly opts: JsonLoggerOptions, private readonly bindings: Record<string, unknown>, level: string) {
    this.threshold = level === "silent" ? SILENT : LEVELS[level as LevelName] ?? LEVELS.info;
  }

  get level(): string {
    return this.threshold === SILENT ? "silent" : (Object.keys(LEVELS) as LevelName[]).find((k) => LEVELS[k] === this.threshold)!;
  }

  set level(l: string) {
    this.threshold = l === "silent" ? SILENT : LEVELS[l as LevelName] ?? LEVELS.info;
  }

  isLevelEnabled(l: string): boolean {
    return (LEVELS[l as LevelName] ?? SILENT) >= this.threshold;
  }

  private write(level: number, a?: unknown, b?: unknown): void {
    if (level < this.threshold) return;
    const obj = typeof a === "object" && a !== null ? a as Record<string, unknown> : undefined;
    const msg = typeof a === "string" ? a : typeof b === "string" ? b : undefined;
    const line: Record<string, unknown> = { level, time: this.opts.isoTime ? new Date().toISOString() : Date.now(), ...this.opts.base, ...this.bindings };
    if (obj instanceof Error) line.err = obj;
    else if (obj) Object.assign(line, obj);
    if (msg !== undefined) line.msg = msg;
    const text = stringify(line) + "\n";
    this.sink.write(text);
  }

  trace(a?: unknown, b?: unknown): void { this.write(LEVELS.trace, a, b); }
  debug(a?: unknown, b?: unknown): void { this.write(LEVELS.debug, a, b); }
  info(a?: unknown, b?: unknown): void { this.write(LEVELS.info, a, b); }
  warn(a?: unknown, b?: unknown): void { this.write(LEVELS.warn, a, b); }
  error(a?: unknown, b?: unknown): void { this.write(LEVELS.error, a, b); }
  fatal(a?: unknown, b?: unknown): void { this.write(LEVELS.fatal, a, b); }
  silent(): void {}

  child(bindings: Record<string, unknown>): JsonLogger {
    return new JsonLogger(this.sink, this.opts, { ...this.bindings, ...bindings }, this.level);
  }

  /** Lines are written synchronously: nothing to flush. */
  flush(): void {}

  /** Closes a log file this logger opened. */
  close(): void {
    this.sink.close();
  }
}

/** A logger with pino's line format and API subset, typed as pino's Logger. */
export function createJsonLogger(opts: JsonLoggerOptions = {}): Logger {
  return new JsonLogger(sinkFor(opts.destination), opts, {}, opts.level ?? "info") as unknown as Logger;
}
