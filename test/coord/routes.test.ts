// The coordination server's route table lookup and its one failure-to-status mapping (src/coord/routes.ts), pure:
// no server. What each access level lets through is proven against a running server in admin-guards.test.ts,
// mtls.test.ts and coord-fuzz.test.ts.
import { describe, expect, it } from "vitest";
import { HttpError } from "../../src/coord/http.js";
import { ANY_METHOD, classifyFailure, findRoute, needsAdmin, type Route } from "../../src/coord/routes.js";

const calls: string[] = [];
const route = (method: string, path: string | RegExp, name: string, access: Route["access"] = "identity") =>
  ({ method, path, access, handle: () => { calls.push(name); } }) as Route;

const table: Route[] = [
  route("GET", "/v1/health", "health", "open"),
  route(ANY_METHOD, /^\/ui(?:\/|$)/, "console", "open"),
  route("GET", "/v1/admin/policy", "get-policy", "admin"),
  route("PUT", "/v1/admin/policy", "set-policy", "admin"),
  route("POST", /^\/v1\/admin\/users\/([^/]+)\/(disable|enable)$/, "able", "admin"),
  route("DELETE", /^\/v1\/admin\/users\/([^/]+)$/, "delete-user", "admin"),
];

const name = (method: string, path: string) => {
  const f = findRoute(table, method, path);
  if (!f) return undefined;
  calls.length = 0;
  void f.route.handle({ params: f.params } as never);
  return { name: calls[0], params: f.params };
};

describe("findRoute", () => {
  it("matches method and exact path", () => {
    expect(name("GET", "/v1/health")).toEqual({ name: "health", params: [] });
    expect(name("PUT", "/v1/admin/policy")).toEqual({ name: "set-policy", params: [] });
    expect(name("GET", "/v1/admin/policy")).toEqual({ name: "get-policy", params: [] });
  });

  it("finds nothing for another method or a longer path", () => {
    expect(name("POST", "/v1/health")).toBeUndefined();
    expect(name("GET", "/v1/health/")).toBeUndefined();
    expect(name("DELETE", "/v1/admin/policy")).toBeUndefined();
  });

  it("hands a pattern's captures to the handler, still encoded", () => {
    expect(name("POST", "/v1/admin/users/ann%2Ex/disable")).toEqual({ name: "able", params: ["ann%2Ex", "disable"] });
    expect(name("DELETE", "/v1/admin/users/bob")).toEqual({ name: "delete-user", params: ["bob"] });
    expect(name("DELETE", "/v1/admin/users/bob/x")).toBeUndefined();
  });

  it("lets a route take any method (the console routes its own)", () => {
    expect(name("POST", "/ui/api/login")?.name).toBe("console");
    expect(name("GET", "/ui")?.name).toBe("console");
    expect(name("GET", "/uix")).toBeUndefined();
  });

  it("puts every /v1/admin/ path behind role admin, known or not", () => {
    expect(needsAdmin("/v1/admin/nothing-here")).toBe(true);
    expect(needsAdmin("/v1/adminx")).toBe(false);
    expect(needsAdmin("/v1/status")).toBe(false);
  });
});

describe("classifyFailure", () => {
  it("answers a handler's own refusal as it is, logging all but 404s", () => {
    const refusal = new HttpError(403, "token_used", "token already used");
    expect(classifyFailure(refusal, "sqlite")).toEqual({ answer: refusal, log: "refused" });
    expect(classifyFailure(new HttpError(404, "not_found", "no endpoint"), "sqlite").log).toBe("none");
  });

  it("answers an unreachable store with 503 naming it and a Retry-After", () => {
    const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const f = classifyFailure(down, "postgres://db-1");
    expect(f.log).toBe("store_unavailable");
    expect(f.answer.status).toBe(503);
    expect(f.answer.code).toBe("store_unavailable");
    expect(f.answer.detail).toContain("postgres://db-1");
    expect(f.answer.headers["retry-after"]).toBe("1");
  });

  it("answers anything else with a bare 500, never the error's text", () => {
    const f = classifyFailure(new TypeError("cannot read properties of undefined (reading 'secret')"), "sqlite");
    expect(f).toMatchObject({ log: "internal", answer: { status: 500, code: "internal" } });
    expect(f.answer.detail).not.toContain("secret");
  });
});
