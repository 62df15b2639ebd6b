// A database migrated by a newer release is never opened by an older one: its tables may hold what this code
// would misread or overwrite. Both stores refuse with the same words (docs/operations.md "Upgrades").
import { RELEASE } from "../release.js";

/** The refusal for a schema newer than this code knows, or undefined when the schema is not newer. */
export function newerSchemaRefusal(current: number, latest: number, where: string): string | undefined {
  if (current <= latest) return undefined;
  return `${where} was migrated by a newer EmberNet (schema version ${current}; ember ${RELEASE.version} knows up to ${latest}): ` +
    "a downgrade would corrupt it; run the release that migrated it (or newer), or restore the backup taken before that upgrade";
}
