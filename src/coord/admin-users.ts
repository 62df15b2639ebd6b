// People (docs/users.md), for admins: console logins (`ember admin create`) and users of the mesh (`ember users
// add|list|disable|enable|remove`), who log in on devices and are named by `user:` rules. Disabling a user ends
// every login of theirs at once (the peers cut their flows on the map delta) and leaves an audit entry.
import { validateGrantValue } from "../pki/grants.js";
import { NAME_PATTERN, NAME_RULE } from "../wire/coord/names.js";
import type { Console } from "./console.js";
import type { CoordContext } from "./context.js";
import { HttpError, labels, readJson, sendJson, str } from "./http.js";
import { MAX_BODY_BYTES } from "./limits.js";
import { hashPassword, passwordProblem, USERNAME_PATTERN } from "./passwords.js";
import { printable, usernameParam } from "./path-params.js";
import type { Call } from "./routes.js";
import type { UserLogins } from "./user-login.js";

export interface UserAdminDeps {
  users: UserLogins;
  /** The console's sessions of a user end when the user is deleted, disabled or gets a new password. */
  console: Console;
}

export class UserAdmin {
  constructor(private readonly ctx: CoordContext, private readonly deps: UserAdminDeps) {}

  /**
   * POST /v1/admin/users. `ember admin create`: a console login (username + password, stored as an scrypt hash).
   * With a tenant (`ember users add`): a user of the mesh, named by `user:` rules, with the groups given.
   */
  async put(c: Call): Promise<void> {
    const { ctx } = this;
    const b = await readJson(c.req, MAX_BODY_BYTES);
    const username = str(b, "username", 64).toLowerCase();
    const password = str(b, "password", 1024);
    const tenant = b.tenant === undefined ? undefined : str(b, "tenant", 63);
    const groups = tenant === undefined ? undefined : labels(b, "groups");
    if (tenant !== undefined) {
      if (!NAME_PATTERN.test(username)) throw new HttpError(400, "bad_username", `"${printable(username, 64)}": a user of the mesh is named like a node (${NAME_RULE}), as policies write user:NAME`);
      try { validateGrantValue("tenant", tenant); } catch (err) { throw new HttpError(400, "bad_request", (err as Error).message); }
    } else if (!USERNAME_PATTERN.test(username)) throw new HttpError(400, "bad_username", `"${printable(username, 64)}": use lowercase letters, digits, '.', '_' and '-', 1-64 characters`);
    const problem = passwordProblem(password);
    if (problem) throw new HttpError(400, "weak_password", problem);
    const what = tenant === undefined ? "console user" : "user";
    if (b.replace !== true && (await ctx.store.getUser(username))) throw new HttpError(409, "user_exists", `${what} "${username}" exists; replace it with --replace`);
    const created = await ctx.store.putUser({
      username, passwordHash: await hashPassword(password), createdAt: Date.now(), createdBy: c.id.name, ...(tenant !== undefined ? { tenant, groups } : {}),
    });
    if (!created) await this.deps.console.sessions.endUser(username, "password_replaced");
    ctx.log.info({ event: created ? "console_user_created" : "console_user_replaced", user: username, tenant, groups, by: c.id.name }, `${what} saved`);
    sendJson(c.res, 200, { username, created, ...(tenant !== undefined ? { tenant, groups } : {}) });
  }

  /** GET /v1/admin/users: console logins and users of the mesh, with the devices each is logged in on. */
  async list(c: Call): Promise<void> {
    const { store } = this.ctx;
    const devices = new Map<string, string[]>();
    for (const n of await store.listNodes()) if (n.user && n.status === "active") devices.set(n.user.name, [...(devices.get(n.user.name) ?? []), n.name]);
    sendJson(c.res, 200, {
      users: (await store.listUsers()).map((u) => ({
        username: u.username, createdAt: new Date(u.createdAt).toISOString(), createdBy: u.createdBy,
        ...(u.tenant !== undefined ? { tenant: u.tenant, groups: u.groups ?? [], disabled: !!u.disabled, devices: devices.get(u.username) ?? [] } : { console: true }),
      })),
    });
  }

  /** POST /v1/admin/users/NAME/(disable|enable): every login of the person ends now on disable. */
  async setDisabled(c: Call): Promise<void> {
    const { ctx } = this;
    const username = usernameParam(c.params[0]);
    const disabled = c.params[1] === "disable";
    const devices = await ctx.store.setUserDisabled(username, disabled);
    if (!devices) throw new HttpError(404, "unknown_user", `no user of the mesh named "${printable(username, 64)}"`);
    if (devices.length) this.deps.users.loggedOutByStore(devices, "disabled");
    if (disabled) await this.deps.console.sessions.endUser(username, "user_disabled");
    ctx.audit.write({ action: disabled ? "user_disabled" : "user_enabled", by: c.id.name, bySerial: c.id.serial, user: username, devices },
      `user ${username} ${disabled ? "disabled" : "enabled"} by ${c.id.name}${devices.length ? ` (logged out of ${devices.join(", ")})` : ""}`);
    sendJson(c.res, 200, { username, disabled, loggedOut: devices });
  }

  /** DELETE /v1/admin/users/NAME */
  async remove(c: Call): Promise<void> {
    const name = usernameParam(c.params[0]);
    if (!(await this.ctx.store.deleteUser(name))) throw new HttpError(404, "unknown_user", `no console user "${printable(name, 64)}"`);
    await this.deps.console.sessions.endUser(name, "user_deleted");
    this.ctx.log.info({ event: "console_user_deleted", user: name, by: c.id.name }, "console user deleted");
    sendJson(c.res, 200, { username: name, deleted: true });
  }
}
