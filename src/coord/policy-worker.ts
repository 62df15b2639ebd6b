// The policy parser's thread (node:worker_threads), started by PolicyCompiler (policy-compiler.ts). It parses
// and compiles one policy per message and answers with the ParseResult: plain JSON-safe data, copied back by
// structured clone. Nothing here touches the server's state; the principals arrive as a snapshot.
import { parentPort } from "node:worker_threads";
import { setPriority } from "node:os";
import { parsePolicy, type ParseResult, type Principal } from "../policy/index.js";
import { namedPrincipals } from "./policy-adapter.js";

export interface CompileRequest { id: number; source: string; knownGroups: string[]; principals: Principal[] }
/** A valid policy comes back without its source (the caller puts it back) and with namedPrincipals() done. */
export interface CompileAnswer { id: number; result: ParseResult; named?: string[] }

// Checking a policy is background work: on Linux setpriority(0) applies to the calling thread only, so this
// lowers the worker, not the event loop that serves enrollment, renewal and map streams.
const WORKER_NICE = 5;
try { setPriority(0, WORKER_NICE); } catch { /* not permitted or not supported: run at normal priority */ }
const port = parentPort;
if (!port) throw new Error("policy-worker.ts runs as a worker thread (see policy-compiler.ts)");
port.on("message", (m: CompileRequest) => {
  // Embedded tests name a person as user:NAME (their principals come keyed so), a machine by its name.
  const byName = new Map(m.principals.map((p) => [p.kind === "user" ? `user:${p.name}` : p.name, p]));
  // parsePolicy never throws on bad input; a bug surfaces as the worker's "error" event.
  const result = parsePolicy(m.source, { knownGroups: new Set(m.knownGroups), resolve: (n) => byName.get(n) });
  if (!result.ok) return port.postMessage({ id: m.id, result } satisfies CompileAnswer);
  // The map hub's naming scan runs here too; the source, which the server already has, is not sent back.
  const named = [...namedPrincipals(result.policy)];
  port.postMessage({ id: m.id, result: { ...result, policy: { ...result.policy, source: "" } }, named } satisfies CompileAnswer);
});
port.postMessage({ ready: true });
