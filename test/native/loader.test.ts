// The loader never throws: a disabled, missing or broken addon comes back as undefined with a reason.
import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NATIVE_ADDON_PATH, loadNativeAddon, nativeStatus } from "../../src/native/addon.js";

describe("native addon loader", () => {
  it("EMBER_NATIVE=off disables it, with the reason", () => {
    const r = loadNativeAddon(NATIVE_ADDON_PATH, { EMBER_NATIVE: "off" });
    expect(r.addon).toBeUndefined();
    expect(r.reason).toMatch(/EMBER_NATIVE=off/);
  });

  it("a missing file is a reason, not an exception", () => {
    const r = loadNativeAddon("/nonexistent/ember_native.node", {});
    expect(r.addon).toBeUndefined();
    expect(r.reason).toMatch(/missing/);
  });

  it("a file that is not a shared object is a reason, not an exception", () => {
    const dir = mkdtempSync(join(tmpdir(), "nat1-"));
    const bogus = join(dir, "ember_native.node");
    writeFileSync(bogus, "not an ELF file");
    const r = loadNativeAddon(bogus, {});
    rmSync(dir, { recursive: true, force: true });
    expect(r.addon).toBeUndefined();
    expect(r.reason).toMatch(/loading .* failed/);
  });

  it("nativeStatus() agrees with the default load", () => {
    const s = nativeStatus();
    const r = loadNativeAddon();
    expect(s.loaded).toBe(r.addon !== undefined);
    if (!s.loaded) {
      expect(s.reason).toBe(r.reason);
      console.log(`native addon not loaded here: ${s.reason}`);
    } else {
      expect(typeof r.addon!.version).toBe("string");
    }
  });
});
