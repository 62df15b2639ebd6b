// The coordination server's audit trail: security-relevant acts (tokens that grant role "admin", "relay" or
// "server", enrollments with an admin token, users disabled and enabled) as JSON lines, each with who, when
// and which token. Every entry goes to the server log (event "audit") and is appended to <data>/audit.log (0600), written synchronously before the
// request is answered, so the record exists as soon as the act is acknowledged.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";

export const AUDIT_FILE = "audit.log";

export type AuditAction = "admin_token_created" | "admin_enrolled" | "infra_token_created" | "user_disabled" | "user_enabled";

export interface AuditEntry {
  action: AuditAction;
  [field: string]: unknown;
}

export class AuditLog {
  readonly file: string;

  constructor(dataDir: string, private readonly log: Logger) {
    this.file = join(dataDir, AUDIT_FILE);
  }

  write(entry: AuditEntry, message: string): void {
    const line = { event: "audit", at: new Date().toISOString(), ...entry };
    this.log.warn(line, message);
    try {
      appendFileSync(this.file, JSON.stringify(line) + "\n", { mode: 0o600 });
    } catch (err) {
      // The log line above still records the act; say loudly that the file copy is missing.
      this.log.error({ event: "audit_write_failed", file: this.file, action: entry.action, detail: (err as Error).message }, "could not append to the audit file");
    }
  }
}
