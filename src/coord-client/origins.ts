// Coordination server URLs as operators give them: one, or several replicas separated by commas.
export function baseUrl(u: string): string {
  let url: URL;
  try { url = new URL(u); } catch { throw new Error(`coordination URL "${u}" is not a URL (expected https://HOST:PORT)`); }
  if (url.protocol !== "https:") throw new Error(`coordination URL must be https://, got "${u}"`);
  return url.origin;
}

/**
 * The coordination replicas a node may use: one URL, or several separated by commas ("https://c1:443,https://c2:443").
 * Each is checked; duplicates count once. The node uses the first that answers and moves on when it fails.
 */
export function coordOrigins(text: string): string[] {
  const list = text.split(",").map((x) => x.trim()).filter(Boolean).map(baseUrl);
  if (!list.length) throw new Error("no coordination URL given");
  return [...new Set(list)];
}
