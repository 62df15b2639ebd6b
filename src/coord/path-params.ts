// Names taken from request paths (/v1/admin/nodes/NAME/revoke, /v1/admin/users/NAME...): percent-decoded, where a
// malformed escape or invalid UTF-8 is the client's fault (400 bad_path, never a 500), then held to the name's
// pattern (400 bad_name), so no handler sees anything but a possible name.
import { NAME_PATTERN } from "../pki/index.js";
import { HttpError } from "./http.js";
import { USERNAME_PATTERN } from "./passwords.js";

/** Client-supplied text for a message or log line: printable ASCII, cut to max characters. */
export function printable(text: string, max: number): string {
  const t = text.replace(/[^\x20-\x7e]/g, "?");
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function decodedParam(raw: string, what: string): string {
  try { return decodeURIComponent(raw); } catch {
    throw new HttpError(400, "bad_path", `the ${what} in the path is not valid percent-encoded UTF-8: "${printable(raw, 80)}"`);
  }
}

/** A node name from the path. */
export function nodeNameParam(raw: string): string {
  const name = decodedParam(raw, "node name");
  if (!NAME_PATTERN.test(name)) {
    throw new HttpError(400, "bad_name", `"${printable(name, 80)}" is not a node name: lowercase letters, digits and '-', 1-63 characters`);
  }
  return name;
}

/** A console or mesh user's name from the path (console users allow '.' and '_' too). */
export function usernameParam(raw: string): string {
  const name = decodedParam(raw, "user name");
  if (!USERNAME_PATTERN.test(name)) {
    throw new HttpError(400, "bad_name", `"${printable(name, 80)}" is not a user name: lowercase letters, digits, '.', '_' and '-', 1-64 characters`);
  }
  return name;
}
