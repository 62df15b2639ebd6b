// After tsc: touch the CLI entry of dist/ so bin/ember.mjs sees the build as newer than the sources it
// was made from (tsc leaves unchanged outputs with their old times).
import { utimesSync } from "node:fs";
const now = new Date();
utimesSync(new URL("../dist/src/cli/main.js", import.meta.url), now, now);
