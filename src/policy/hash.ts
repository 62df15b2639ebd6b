// A policy's hash (its source text's SHA-256), in its own module: nodes hash rules they receive without loading the
// YAML parser (parse.ts), which only the coordination server and a node with a local policy file need.
import { createHash } from "node:crypto";

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
