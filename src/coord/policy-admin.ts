// The policy in force on the coordination server, and its admin routes: the one owner of the compiled policy
// (and of the hash of the stored one), which uploads (checked in a worker thread), other replicas' uploads
// and `ember policy check` go through. Changes apply in upload order; each one is pushed to every map stream.
import { createHash } from "node:crypto";
import { MAX_POLICY_BYTES } from "../policy/index.js";
import { NAME_PATTERN } from "../wire/coord/names.js";
import type { CoordContext } from "./context.js";
import { HttpError, readJson, sendJson, str } from "./http.js";
import { MAX_BODY_BYTES, MAX_POLICY_BODY_BYTES } from "./limits.js";
import { decide, EMPTY_POLICY, parseFlowSpec, parsePolicy, type CompiledPolicy, type ParseResult, type Principal } from "./policy-adapter.js";
import { PolicyCompileError, PolicyCompiler, type CompileContext } from "./policy-compiler.js";
import type { Call } from "./routes.js";

export interface PolicyAdminOptions {
  /** Deadline for parsing and compiling one uploaded policy in the worker (default POLICY_COMPILE_DEFAULTS.timeoutMs). */
  timeoutMs?: number;
  /** Told after each change of the policy in force (publications depend on it). */
  changed(): void;
}

export class PolicyAdmin {
  private policy: CompiledPolicy = EMPTY_POLICY;
  /** Hash of the stored policy in force: a replica re-reads the policy only when another stored a new one. */
  private storedHash?: string;
  /** Policy applications in upload order (each waits for the one before). */
  private applying: Promise<unknown> = Promise.resolve();
  /** Uploaded policies are parsed in a worker thread, one at a time, so the event loop keeps serving. */
  private readonly compiler: PolicyCompiler;

  constructor(private readonly ctx: CoordContext, private readonly opts: PolicyAdminOptions) {
    this.compiler = new PolicyCompiler({ timeoutMs: opts.timeoutMs, onEvent: (event, fields) => ctx.log.info({ event, ...fields }) });
  }

  /** The policy in force (default deny until one is set). */
  get current(): CompiledPolicy { return this.policy; }

  /** At start: the stored policy; one that no longer parses leaves default deny in force, said loudly. */
  async load(): Promise<void> {
    const stored = await this.ctx.store.getPolicy();
    if (!stored) return;
    const r = parsePolicy(stored.source);
    if (r.ok) { this.policy = r.policy; this.storedHash = stored.hash; }
    else this.ctx.log.error({ event: "policy_load_failed", errors: r.errors }, "stored policy no longer parses; serving with default deny");
  }

  warm(): void { this.compiler.warm(); }
  close(): Promise<void> { return this.compiler.close(); }

  /** GET /v1/admin/policy */
  async get(c: Call): Promise<void> {
    const p = await this.ctx.store.getPolicy();
    sendJson(c.res, 200, p ? { source: p.source, hash: p.hash, setAt: new Date(p.setAt).toISOString(), setBy: p.setBy } : { source: "", hash: EMPTY_POLICY.hash });
  }

  /** PUT /v1/admin/policy {source}: checked against the mesh as it is, then stored, applied and pushed. */
  async set(c: Call): Promise<void> {
    const { ctx } = this;
    const b = await readJson(c.req, MAX_POLICY_BODY_BYTES, `, which holds any policy within the limit: a policy is at most ${MAX_POLICY_BYTES} bytes`);
    const source = typeof b.source === "string" ? b.source : "";
    if (typeof b.source !== "string") throw new HttpError(400, "bad_request", `"source" must be the policy text`);
    let r: ParseResult;
    let named: Set<string> | undefined;
    try {
      ({ result: r, named } = await this.compiler.compile(source, await this.compileContext()));
    } catch (err) {
      if (!(err instanceof PolicyCompileError)) throw err;
      const status = err.code === "policy_busy" || err.code === "policy_checker_unavailable" ? 503 : 422;
      throw new HttpError(status, err.code, err.message);
    }
    if (!r.ok) {
      ctx.log.warn({ event: "policy_refused", errors: r.errors, by: c.id.name }, "policy refused");
      return sendJson(c.res, 422, { error: "policy_invalid", detail: `${r.errors.length} error(s); nothing applied`, errors: r.errors, warnings: r.warnings });
    }
    const policy = r.policy;
    // Applied in upload order: a later upload whose check finished first still applies after this one.
    const hash = await this.inOrder(async () => {
      const hash = policy.hash || createHash("sha256").update(source).digest("hex");
      await ctx.store.setPolicy({ source, hash, setAt: Date.now(), setBy: c.id.name });
      const before = ctx.hub().stats.bytesSent;
      this.apply(policy, hash, named);
      ctx.log.info({ event: "policy_set", hash, rules: policy.rules.length, warnings: r.warnings.length, deltaBytes: ctx.hub().stats.bytesSent - before, by: c.id.name }, "policy applied");
      return hash;
    });
    sendJson(c.res, 200, { ok: true, hash, rules: policy.rules.length, warnings: r.warnings });
  }

  /** POST /v1/admin/policy/check {from, to}: what the policy in force decides for one flow, and by which rule. */
  async check(c: Call): Promise<void> {
    const b = await readJson(c.req, MAX_BODY_BYTES);
    const fromName = str(b, "from", 68);
    let flow;
    try { flow = parseFlowSpec(str(b, "to", 128)); } catch (err) { throw new HttpError(400, "bad_flow", (err as Error).message); }
    const hub = this.ctx.hub();
    // `user:NAME` asks about a person (on any device), as a user: rule sees them.
    const from = fromName.startsWith("user:") ? await this.userPrincipal(fromName.slice(5)) : hub.principal(fromName);
    const to = hub.principal(flow.name);
    if (!from) throw new HttpError(404, "unknown_node", fromName.startsWith("user:") ? `no user of the mesh named "${fromName.slice(5)}"` : `no active node named "${fromName}"`);
    if (!to) throw new HttpError(404, "unknown_node", `no active node named "${flow.name}"`);
    const d = decide(this.policy, from, to, flow.port, flow.protocol);
    sendJson(c.res, 200, { allow: d.allow, rule: d.rule, reason: d.reason, from: fromName, to: flow.name, port: flow.port, protocol: flow.protocol });
  }

  /** The stored policy, when another replica stored a new one: applied in upload order like a local one. */
  reload(): Promise<void> {
    return this.inOrder(async () => {
      const stored = await this.ctx.store.getPolicy();
      if (!stored || stored.hash === this.storedHash) return;
      // Checked by the replica that stored it; parsed here on the event loop (the worker checks uploads only).
      const r = parsePolicy(stored.source);
      if (!r.ok) return void this.ctx.log.error({ event: "policy_load_failed", errors: r.errors, hash: stored.hash }, "policy stored by another replica does not parse here; keeping the one in force");
      this.apply(r.policy, stored.hash);
      this.ctx.log.info({ event: "policy_set", hash: stored.hash, rules: r.policy.rules.length, by: stored.setBy, via: "replica" }, "policy applied (set on another replica)");
    });
  }

  /** The one setter of the policy in force: stored hash, maps pushed, dependents told, counted. */
  private apply(policy: CompiledPolicy, hash: string, named?: Set<string>): void {
    this.storedHash = hash;
    this.policy = policy;
    this.ctx.timePush("policy", () => this.ctx.hub().setPolicy(policy, named));
    this.opts.changed();
    this.ctx.counters.policy_changes++;
  }

  private inOrder<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.applying.then(fn);
    this.applying = run.catch(() => {});
    return run;
  }

  /** What the policy checker needs to know of the mesh, as a snapshot (it runs in another thread). */
  private async compileContext(): Promise<CompileContext> {
    const known = new Set<string>(await this.ctx.store.tokenGroups());
    const principals = this.ctx.hub().allPrincipals();
    // People of the mesh: their groups are groups rules may name, and embedded tests may name them as user:NAME.
    for (const u of await this.ctx.store.listUsers()) {
      if (u.tenant !== undefined) principals.push({ name: u.username, tenant: u.tenant, groups: u.groups ?? [], kind: "user" });
    }
    for (const p of principals) for (const g of p.groups) known.add(g);
    return { knownGroups: known, principals };
  }

  private async userPrincipal(name: string): Promise<Principal | undefined> {
    const u = NAME_PATTERN.test(name) ? await this.ctx.store.getUser(name) : undefined;
    return u?.tenant !== undefined ? { name: u.username, tenant: u.tenant, groups: u.groups ?? [], kind: "user" } : undefined;
  }
}
