// Revocation on the coordination server: the one owner of the revocation list in force (its number and signed
// text), which `ember nodes revoke` and `ember ca revoke` (ca.json, polled) extend, other replicas' lists replace
// when newer, the verifier applies, and every map stream and GET /v1/revocation hands out.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CA_FILES, signRevocationList } from "../pki/index.js";
import type { CoordContext } from "./context.js";
import { HttpError, sendJson } from "./http.js";
import { nodeNameParam } from "./path-params.js";
import type { Call, OpenCall } from "./routes.js";

export interface RevocationDeps {
  /** Told of each revoked node (its publications go). */
  nodeRevoked(name: string): void;
}

export class Revocations {
  private number = 0;
  private text?: string;
  private emptyListCache?: { key: string; text: string };

  constructor(private readonly ctx: CoordContext, private readonly deps: RevocationDeps) {}

  /** The list in force, as signed text, or undefined while the server has revoked nothing. */
  get current(): string | undefined { return this.text; }
  /** Its number (0 before any). */
  get listNumber(): number { return this.number; }

  /** At start: the stored list (it must verify), applied to the verifier. */
  async load(): Promise<void> {
    const rev = await this.ctx.store.getRevocation();
    if (!rev) return;
    this.number = rev.number;
    this.text = rev.text;
    const applied = this.ctx.verifier.applyRevocationList(rev.text);
    if (!applied.ok) throw new Error(`stored revocation list #${rev.number} does not verify: ${applied.detail}`);
  }

  /** The list in force, or the CA's own when the server revoked nothing (enrollment answers carry it). */
  listOrEmpty(): string {
    return this.text ?? this.emptyList();
  }

  /** POST /v1/admin/nodes/NAME/revoke */
  async revoke(c: Call): Promise<void> {
    const { ctx } = this;
    const name = nodeNameParam(c.params[0]);
    const now = Date.now();
    const r = await ctx.store.revoke({ name, now, minNumber: this.caRevocations().number, sign: (number, serials) => this.signWithCaSerials(number, serials) });
    if (!r) throw new HttpError(404, "unknown_node", `no node named "${name}"`);
    const applied = ctx.verifier.applyRevocationList(r.text);
    if (!applied.ok) ctx.log.error({ event: "revocation_apply_failed", detail: applied.detail });
    this.number = r.number;
    this.text = r.text;
    ctx.timePush("revoke", () => ctx.hub().revoke(name, r.text));
    this.deps.nodeRevoked(name);
    ctx.counters.revocations++;
    const serials = r.serials.map((s) => s.serial);
    ctx.log.info({ event: "revoked", name, number: r.number, serials, by: c.id.name }, "node revoked");
    sendJson(c.res, 200, { name, number: r.number, serials });
  }

  /** GET /v1/revocation: the signed list as it is (JSON text). */
  send(c: OpenCall): void {
    const text = this.listOrEmpty();
    c.res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
    c.res.end(text);
  }

  /** The stored list, when another replica stored a newer one; returns the list in force. */
  async reload(): Promise<string | undefined> {
    const rev = await this.ctx.store.getRevocation();
    if (rev && rev.number > this.number) {
      const applied = this.ctx.verifier.applyRevocationList(rev.text);
      if (!applied.ok) {
        this.ctx.log.error({ event: "revocation_apply_failed", number: rev.number, detail: applied.detail });
        return this.text;
      }
      this.number = rev.number;
      this.text = rev.text;
      this.ctx.log.info({ event: "revocation_applied", number: rev.number, via: "replica" }, "revocation list from another replica applied");
    }
    return this.text;
  }

  /**
   * Picks up revocations made with `ember ca revoke` on this CA directory (certificates issued offline, such
   * as admins', can only be revoked there): when ca.json lists a serial the server's verifier does not
   * refuse yet, a new list with it is signed, stored, applied and pushed to every map stream.
   */
  async syncCa(): Promise<void> {
    const { ctx } = this;
    const ca = this.caRevocations();
    const missing = ca.serials.filter((s) => !ctx.verifier.revocation.isRevoked(s));
    if (missing.length === 0) return;
    const r = await ctx.store.publishRevocation({ now: Date.now(), minNumber: ca.number, sign: (n, serials) => this.signWithCaSerials(n, serials) });
    const applied = ctx.verifier.applyRevocationList(r.text);
    if (!applied.ok) return void ctx.log.error({ event: "revocation_apply_failed", detail: applied.detail });
    this.number = r.number;
    this.text = r.text;
    ctx.hub().publishRevocation(r.text);
    ctx.log.info({ event: "ca_revocations_applied", number: r.number, caNumber: ca.number, serials: missing }, "revocations from the CA directory applied");
  }

  /** The list handed out before the server revoked anything: the CA's own, re-signed only when ca.json changes. */
  private emptyList(): string {
    const { ca } = this.ctx;
    let key = "";
    try { const st = statSync(join(ca.dir, CA_FILES.meta)); key = `${st.mtimeMs}:${st.size}:${st.ino}`; } catch { /* unreadable: sign anew */ }
    if (key && this.emptyListCache?.key === key) return this.emptyListCache.text;
    const own = this.caRevocations();
    const text = signRevocationList(ca, own.number, own.serials);
    this.emptyListCache = key ? { key, text } : undefined;
    return text;
  }

  /** The CA's own revocations (`ember ca revoke`, kept in ca.json): its list number and serials. */
  private caRevocations(): { number: number; serials: string[] } {
    try {
      const meta = JSON.parse(readFileSync(join(this.ctx.ca.dir, CA_FILES.meta), "utf8")) as { revocationNumber?: unknown; revoked?: unknown };
      const serials = Array.isArray(meta.revoked) ? meta.revoked.filter((s): s is string => typeof s === "string" && /^[0-9a-f]{1,64}$/.test(s)) : [];
      return { number: Number(meta.revocationNumber) || 0, serials };
    } catch { return { number: 0, serials: [] }; }
  }

  /**
   * Signs a list for the store: the server's own revoked serials plus the CA's. Every list the server signs
   * is numbered above the CA's (`ember ca revoke` numbers lists in ca.json) and REPLACES it wherever it is
   * applied, so leaving the CA's serials out would un-revoke them at relays and nodes.
   */
  private signWithCaSerials(number: number, serials: string[]): string {
    return signRevocationList(this.ctx.ca, number, [...new Set([...serials, ...this.caRevocations().serials])]);
  }
}
