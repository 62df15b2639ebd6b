// The verbs of `ember` and the modules that register them. A verb's module is loaded only when it is the verb
// being run: `ember status` never loads the daemon, the PKI or the coordination server, so a CLI call starts in a
// fraction of the time (docs/performance.md "Start-up").
import { Command } from "commander";
import { versionLine } from "../release.js";

type Register = (program: Command) => void;

/** Every top-level verb and the module that registers it (test/cli/verbs.test.ts checks the table is complete). */
export const VERBS: Record<string, () => Promise<Register>> = {
  ca: async () => (await import("./ca.js")).registerCa,
  cert: async () => (await import("./cert.js")).registerCert,
  demo: async () => (await import("./demo.js")).registerDemo,
  up: async () => (await import("./up.js")).registerUp,
  status: async () => (await import("./peers.js")).registerPeers,
  peers: async () => (await import("./peers.js")).registerPeers,
  ping: async () => (await import("./peers.js")).registerPeers,
  coord: async () => (await import("./coord.js")).registerCoord,
  token: async () => (await import("./token.js")).registerToken,
  nodes: async () => (await import("./nodes.js")).registerNodes,
  policy: async () => (await import("./policy.js")).registerPolicy,
  relay: async () => (await import("./relay.js")).registerRelay,
  netcheck: async () => (await import("./netcheck.js")).registerNetcheck,
  serve: async () => (await import("./serve.js")).registerServe,
  resolve: async () => (await import("./access.js")).registerAccess,
  forward: async () => (await import("./access.js")).registerAccess,
  admin: async () => (await import("./health.js")).registerHealthVerbs,
  whois: async () => (await import("./health.js")).registerHealthVerbs,
  logs: async () => (await import("./health.js")).registerHealthVerbs,
  users: async () => (await import("./users.js")).registerUsers,
  login: async () => (await import("./users.js")).registerUsers,
  logout: async () => (await import("./users.js")).registerUsers,
  expose: async () => (await import("./expose.js")).registerExpose,
  unexpose: async () => (await import("./expose.js")).registerExpose,
  edge: async () => (await import("./edge.js")).registerEdge,
};

/** A program with the given verbs registered (each module once), or every verb when `verb` is not one of them. */
export async function buildProgram(verb: string | undefined): Promise<Command> {
  const program = new Command();
  program.name("ember").description("EmberNet: zero-trust overlay network").version(versionLine()).exitOverride();
  const wanted = verb !== undefined && VERBS[verb] ? [VERBS[verb]] : verb === "--version" || verb === "-V" ? [] : Object.values(VERBS);
  const done = new Set<Register>();
  for (const load of wanted) {
    const register = await load();
    if (done.has(register)) continue;
    done.add(register);
    register(program);
  }
  return program;
}

