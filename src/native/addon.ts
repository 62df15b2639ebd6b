// Loads the optional N-API addon (native/, built at install by scripts/build-native.mjs). Never throws:
// without the addon (not built, EMBER_NATIVE=off, a bad binary) the caller gets undefined and
// nativeStatus() says why, and the daemon keeps its TypeScript paths.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.js";
import type { NativeAddon } from "./types.js";

export type { NativeAddon } from "./types.js";

/** Where the build puts the addon: relative to the package root, so src/ (tsx) and dist/src/ both find it. */
export const NATIVE_ADDON_PATH = join(PACKAGE_ROOT, "native", "build", "Release", "ember_native.node");

export interface NativeStatus {
  loaded: boolean;
  reason?: string;
}

const EXPORTS = ["aeadSealBatch", "aeadOpenBatch", "openTun", "DataPlane"] as const;

/** Loads the addon at path (tests pass other paths); the result and reason are not cached. */
export function loadNativeAddon(path: string = NATIVE_ADDON_PATH, env: NodeJS.ProcessEnv = process.env): { addon?: NativeAddon; reason?: string } {
  if (env.EMBER_NATIVE === "off") return { reason: "disabled by EMBER_NATIVE=off" };
  if (process.platform !== "linux") return { reason: `the addon is Linux-only (this is ${process.platform})` };
  if (!existsSync(path)) return { reason: `not built: ${path} is missing (npm run build:native)` };
  try {
    const mod = createRequire(import.meta.url)(path) as Partial<NativeAddon>;
    const missing = EXPORTS.filter((k) => typeof mod[k] !== "function");
    if (missing.length) return { reason: `${path} lacks ${missing.join(", ")}: rebuild it (npm run build:native)` };
    return { addon: mod as NativeAddon };
  } catch (e) {
    return { reason: `loading ${path} failed: ${(e as Error).message.split("\n")[0]}` };
  }
}

let cached: { addon?: NativeAddon; reason?: string } | undefined;

/** The addon, loaded once per process, or undefined (see nativeStatus()). */
export function nativeAddon(): NativeAddon | undefined {
  cached ??= loadNativeAddon();
  return cached.addon;
}

export function nativeStatus(): NativeStatus {
  cached ??= loadNativeAddon();
  return cached.addon ? { loaded: true } : { loaded: false, reason: cached.reason };
}
