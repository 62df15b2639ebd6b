// Policy parsing and compiling off the coordination server's event loop. A valid 10,000-rule policy takes
// about a second of CPU (a refused 21,000-rule one more): on the main thread that stalled every enrollment,
// renewal, map stream and health check behind one admin's upload. Here one worker thread (policy-worker.ts)
// parses one policy at a time; uploads wait in a short queue (full: 503 policy_busy), each gets a deadline
// (passed: the worker is terminated, the upload refused, the next one gets a fresh worker). The result is
// plain JSON-safe data, copied back by structured clone.
import { Worker } from "node:worker_threads";
import type { ParseResult, Principal } from "../policy/index.js";
import type { CompileAnswer, CompileRequest } from "./policy-worker.js";

/** A checked policy; for a valid one, also the names the map hub gives visibility classes (namedPrincipals). */
export interface CompileOutcome { result: ParseResult; named?: Set<string> }

export const POLICY_COMPILE_DEFAULTS = {
  /** One policy's parse and compile; a valid 1 MiB policy takes ~1 s on a 2-core VM, so this is ~20x that. */
  timeoutMs: 20_000,
  /** Uploads waiting behind the one being parsed. */
  maxQueue: 4,
  /** Loading the worker (TypeScript sources through tsx when not built). */
  startTimeoutMs: 30_000,
  /** The worker's heap: a hostile policy that would exhaust memory kills the worker, not the server (a valid 1 MiB policy needs ~100 MB). */
  maxHeapMb: 512,
} as const;

/**
 * policy_busy: the queue is full (503); policy_timeout: this policy took too long (422); policy_check_failed:
 * the worker died on this policy, e.g. over its memory limit (422); policy_checker_unavailable: the worker
 * cannot start or the server is closing (503).
 */
export type PolicyCompileErrorCode = "policy_busy" | "policy_timeout" | "policy_check_failed" | "policy_checker_unavailable";

export class PolicyCompileError extends Error {
  constructor(readonly code: PolicyCompileErrorCode, message: string) { super(message); }
}

export interface CompileContext { knownGroups: Iterable<string>; principals: Principal[] }

interface Job {
  req: Omit<CompileRequest, "id">;
  timeoutMs?: number;
  resolve: (r: CompileOutcome) => void;
  reject: (e: Error) => void;
}

/** Starts policy-worker: the built .js next to this file, or the .ts source through tsx's loader. */
function startWorker(maxHeapMb: number): Worker {
  const here = import.meta.url;
  const resourceLimits = { maxOldGenerationSizeMb: maxHeapMb };
  if (!here.endsWith(".ts")) return new Worker(new URL("./policy-worker.js", here), { resourceLimits });
  const tsx = import.meta.resolve("tsx/esm/api");
  const target = new URL("./policy-worker.ts", here).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); });`, { eval: true, resourceLimits });
}

export class PolicyCompiler {
  private worker?: Worker;
  private ready?: Promise<Worker>;
  private readonly queue: Job[] = [];
  private running = false;
  private nextId = 1;
  private closed = false;
  readonly stats = { compiled: 0, timedOut: 0, busy: 0, workerStarts: 0 };

  constructor(private readonly o: { timeoutMs?: number; maxQueue?: number; startTimeoutMs?: number; maxHeapMb?: number; onEvent?: (event: string, fields: object) => void } = {}) {}

  /** Starts the worker ahead of the first upload (optional: compile() starts it when needed). */
  warm(): void {
    void this.getWorker().catch(() => { /* reported by the compile() that needs it */ });
  }

  /** Parses and compiles one policy in the worker; rejects with PolicyCompileError when busy, too slow or broken. */
  compile(source: string, ctx: CompileContext, opts: { timeoutMs?: number } = {}): Promise<CompileOutcome> {
    if (this.closed) return Promise.reject(new PolicyCompileError("policy_checker_unavailable", "the coordination server is shutting down"));
    const max = this.o.maxQueue ?? POLICY_COMPILE_DEFAULTS.maxQueue;
    if (this.queue.length >= max) {
      this.stats.busy++;
      return Promise.reject(new PolicyCompileError("policy_busy", `${this.queue.length + 1} policy uploads are already being checked; try again shortly`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { source, knownGroups: [...ctx.knownGroups], principals: ctx.principals }, timeoutMs: opts.timeoutMs, resolve, reject });
      void this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new PolicyCompileError("policy_checker_unavailable", "the coordination server is shutting down"));
    const w = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    await w?.terminate();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue.shift(); job; job = this.queue.shift()) {
        try { job.resolve(await this.run(job.req, job.timeoutMs)); } catch (err) { job.reject(err as Error); }
      }
    } finally {
      this.running = false;
    }
  }

  private getWorker(): Promise<Worker> {
    if (this.ready) return this.ready;
    this.stats.workerStarts++;
    const w = startWorker(this.o.maxHeapMb ?? POLICY_COMPILE_DEFAULTS.maxHeapMb);
    w.unref();
    this.worker = w;
    const ready = new Promise<Worker>((resolve, reject) => {
      const limit = this.o.startTimeoutMs ?? POLICY_COMPILE_DEFAULTS.startTimeoutMs;
      const timer = setTimeout(() => { void w.terminate(); fail(new PolicyCompileError("policy_checker_unavailable", `the policy checker did not start in ${limit} ms`)); }, limit);
      const fail = (err: Error) => { clearTimeout(timer); this.discard(w); reject(err); };
      w.once("message", (m: { ready?: boolean }) => { if (m?.ready) { clearTimeout(timer); resolve(w); } });
      w.once("error", (e) => fail(new PolicyCompileError("policy_checker_unavailable", `the policy checker failed to start: ${e.message}`)));
      w.once("exit", (code) => fail(new PolicyCompileError("policy_checker_unavailable", `the policy checker exited (${code}) while starting`)));
    });
    this.ready = ready;
    return ready;
  }

  private async run(req: Omit<CompileRequest, "id">, timeoutMs?: number): Promise<CompileOutcome> {
    const w = await this.getWorker();
    const id = this.nextId++;
    const limit = timeoutMs ?? this.o.timeoutMs ?? POLICY_COMPILE_DEFAULTS.timeoutMs;
    const t0 = performance.now();
    return new Promise<CompileOutcome>((resolve, reject) => {
      const done = () => { clearTimeout(timer); w.off("message", onMessage); w.off("error", onError); w.off("exit", onExit); };
      const onMessage = (m: Partial<CompileAnswer>) => {
        if (m?.id !== id || !m.result) return;
        done();
        this.stats.compiled++;
        this.o.onEvent?.("policy_compiled", { ms: Math.round(performance.now() - t0), ok: m.result.ok, bytes: req.source.length });
        const result = m.result;
        if (result.ok) result.policy.source = req.source;
        resolve({ result, named: m.named && new Set(m.named) });
      };
      const onError = (e: Error) => { done(); this.discard(w); reject(new PolicyCompileError("policy_check_failed", `the policy checker failed on this policy: ${e.message}; nothing applied`)); };
      const onExit = (code: number) => { done(); this.discard(w); reject(new PolicyCompileError("policy_check_failed", `the policy checker stopped (exit ${code}) on this policy; nothing applied`)); };
      const timer = setTimeout(() => {
        done();
        this.stats.timedOut++;
        this.discard(w);
        void w.terminate();
        this.o.onEvent?.("policy_timeout", { ms: limit, bytes: req.source.length });
        reject(new PolicyCompileError("policy_timeout", `checking the policy took longer than ${limit} ms; nothing applied`));
      }, limit);
      w.on("message", onMessage);
      w.once("error", onError);
      w.once("exit", onExit);
      w.postMessage({ id, ...req } satisfies CompileRequest);
    });
  }

  /** Forgets a worker that failed or was terminated; the next compile() starts a new one. */
  private discard(w: Worker): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.ready = undefined;
  }
}
