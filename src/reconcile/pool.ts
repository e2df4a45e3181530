// A small worker-thread pool for CPU-heavy reconciliation jobs, so the event loop keeps serving
// /health and every other route while a 10,000-record job runs.
//
// - size workers (default: one less than the machine's cores, at least one), started on first use;
// - a bounded queue: when every worker is busy and queueLimit jobs already wait, run() rejects at
//   once with PoolSaturatedError (the route answers 503 with Retry-After), never an unbounded queue;
// - a per-job timeout counted from when a worker takes the job: the worker is terminated (the only
//   way to stop synchronous code) and replaced, and the job rejects with PoolTimeoutError;
// - a worker that crashes (uncaught error, out of memory, exit) is replaced; its job rejects with
//   WorkerCrashedError. An error the job itself throws is JobFailedError and the worker stays.
//
// The worker is src/reconcile/worker.ts run through tsx in development and tests (this file is then
// a .ts file too), and dist/reconcile/worker.js after `npm run build`.
import { availableParallelism } from 'node:os';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { ReconcileResult } from './engine/engine.js';
import type { JobMessage, ReconcileJob, ResultMessage } from './worker.js';

export interface PoolLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WorkerPoolOptions {
  /** Number of worker threads. Default: defaultPoolSize(). */
  size?: number;
  /** Jobs allowed to wait when every worker is busy; one more is refused. Default 4. */
  queueLimit?: number;
  /** Longest a job may run on a worker before the worker is terminated. Default 30 s. */
  timeoutMs?: number;
  /** Makes a worker; tests pass workers built from inline code. Default: the reconciliation worker. */
  createWorker?: () => Worker;
  logger?: PoolLogger;
  name?: string;
}

export interface PoolStats {
  size: number;
  /** Workers started and alive. */
  workers: number;
  busy: number;
  queued: number;
  queueLimit: number;
  /** Totals since start. */
  completed: number;
  failed: number;
  timedOut: number;
  crashed: number;
  rejected: number;
}

/** The queue is full: shed load now instead of queueing without bound. */
export class PoolSaturatedError extends Error {
  constructor(
    readonly queueLimit: number,
    /** A rough estimate of when capacity frees up. */
    readonly retryAfterSeconds: number,
  ) {
    super(`Reconciliation queue is full (${queueLimit} waiting)`);
    this.name = 'PoolSaturatedError';
  }
}

export class PoolTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`Reconciliation job exceeded ${timeoutMs} ms; its worker was stopped`);
    this.name = 'PoolTimeoutError';
  }
}

export class WorkerCrashedError extends Error {
  constructor(detail: string) {
    super(`Reconciliation worker stopped unexpectedly: ${detail}`);
    this.name = 'WorkerCrashedError';
  }
}

/** The job threw inside the worker (the worker itself is fine). */
export class JobFailedError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = 'JobFailedError';
  }
}

export class PoolClosedError extends Error {
  constructor() {
    super('Reconciliation pool is shut down');
    this.name = 'PoolClosedError';
  }
}

/** One less than the cores (the event loop keeps one), never less than one. */
export function defaultPoolSize(): number {
  return Math.max(1, availableParallelism() - 1);
}

interface Task<J, R> {
  id: number;
  job: J;
  resolve(result: R): void;
  reject(error: Error): void;
}

interface Slot<J, R> {
  worker: Worker;
  task: Task<J, R> | null;
  timer: NodeJS.Timeout | null;
  /** Set when we terminate it on purpose, so its exit is not reported as a crash. */
  retired: boolean;
  lastError: Error | null;
}

const silentLogger: PoolLogger = { info() {}, warn() {}, error() {} };

export class WorkerPool<J = unknown, R = unknown> {
  readonly size: number;
  readonly queueLimit: number;
  readonly timeoutMs: number;
  private readonly createWorker: () => Worker;
  private readonly logger: PoolLogger;
  private readonly name: string;
  private readonly slots = new Set<Slot<J, R>>();
  private readonly queue: Task<J, R>[] = [];
  private nextId = 1;
  private closed = false;
  /** Replace dead workers eagerly once the pool has been warmed (production); lazily otherwise. */
  private keepWarm = false;
  private averageJobMs = 1000;
  private readonly counters = { completed: 0, failed: 0, timedOut: 0, crashed: 0, rejected: 0 };

  constructor(options: WorkerPoolOptions = {}) {
    this.size = whole(options.size ?? defaultPoolSize(), 'size', 1);
    this.queueLimit = whole(options.queueLimit ?? 4, 'queueLimit', 0);
    this.timeoutMs = whole(options.timeoutMs ?? 30_000, 'timeoutMs', 1);
    this.createWorker = options.createWorker ?? createReconcileWorker;
    this.logger = options.logger ?? silentLogger;
    this.name = options.name ?? 'reconcile';
  }

  /** Starts every worker now instead of on first use (saves the first request the start-up). */
  warm(): void {
    this.keepWarm = true;
    while (!this.closed && this.slots.size < this.size) this.spawn();
  }

  stats(): PoolStats {
    let busy = 0;
    for (const slot of this.slots) if (slot.task !== null) busy += 1;
    return {
      size: this.size,
      workers: this.slots.size,
      busy,
      queued: this.queue.length,
      queueLimit: this.queueLimit,
      ...this.counters,
    };
  }

  /** Throws PoolSaturatedError if run() called now would be refused. */
  assertCapacity(): void {
    if (this.closed) throw new PoolClosedError();
    if (this.idleSlot() === null && this.slots.size >= this.size && this.queue.length >= this.queueLimit) {
      throw this.saturated();
    }
  }

  run(job: J): Promise<R> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    try {
      this.assertCapacity();
    } catch (error) {
      this.counters.rejected += 1;
      return Promise.reject(error as Error);
    }
    return new Promise<R>((resolve, reject) => {
      const task: Task<J, R> = { id: this.nextId++, job, resolve, reject };
      const slot = this.idleSlot() ?? (this.slots.size < this.size ? this.spawn() : null);
      if (slot === null) this.queue.push(task);
      else this.dispatch(slot, task);
    });
  }

  /** Rejects waiting jobs, stops every worker (running jobs reject with PoolClosedError). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new PoolClosedError());
    const exits: Promise<number>[] = [];
    for (const slot of this.slots) {
      slot.retired = true;
      if (slot.timer) clearTimeout(slot.timer);
      slot.task?.reject(new PoolClosedError());
      slot.task = null;
      exits.push(slot.worker.terminate());
    }
    this.slots.clear();
    await Promise.allSettled(exits);
  }

  private saturated(): PoolSaturatedError {
    // Jobs ahead of a new one, shared among the workers, at the recent average duration.
    const ahead = this.queue.length + this.size;
    const seconds = Math.ceil((ahead * this.averageJobMs) / this.size / 1000);
    return new PoolSaturatedError(this.queueLimit, Math.min(60, Math.max(1, seconds)));
  }

  private idleSlot(): Slot<J, R> | null {
    for (const slot of this.slots) if (slot.task === null && !slot.retired) return slot;
    return null;
  }

  private spawn(): Slot<J, R> {
    const worker = this.createWorker();
    const slot: Slot<J, R> = { worker, task: null, timer: null, retired: false, lastError: null };
    this.slots.add(slot);
    worker.on('message', (message: ResultMessage<R>) => this.onMessage(slot, message));
    worker.on('error', (error: Error) => {
      slot.lastError = error;
    });
    worker.on('exit', (code) => this.onExit(slot, code));
    // An idle worker must not keep the process alive; a busy one is kept alive by its pending job.
    worker.unref();
    return slot;
  }

  private dispatch(slot: Slot<J, R>, task: Task<J, R>): void {
    slot.task = task;
    slot.worker.ref();
    const started = performance.now();
    slot.timer = setTimeout(() => this.onTimeout(slot), this.timeoutMs);
    const resolve = task.resolve;
    task.resolve = (result) => {
      this.averageJobMs = this.averageJobMs * 0.7 + (performance.now() - started) * 0.3;
      resolve(result);
    };
    try {
      slot.worker.postMessage({ id: task.id, job: task.job } satisfies JobMessage<J>);
    } catch (error) {
      // Not cloneable (a function, a symbol): the caller's bug, not the worker's.
      this.finish(slot);
      task.reject(error as Error);
      this.pump();
    }
  }

  private finish(slot: Slot<J, R>): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.task = null;
    if (!slot.retired) slot.worker.unref();
  }

  private onMessage(slot: Slot<J, R>, message: ResultMessage<R>): void {
    const task = slot.task;
    if (task === null || task.id !== message.id) return; // a late answer to a job we gave up on
    this.finish(slot);
    if (message.ok) {
      this.counters.completed += 1;
      task.resolve(message.result);
    } else {
      this.counters.failed += 1;
      task.reject(new JobFailedError(message.error.name, message.error.message));
    }
    this.pump();
  }

  private onTimeout(slot: Slot<J, R>): void {
    const task = slot.task;
    if (task === null) return;
    this.counters.timedOut += 1;
    this.logger.warn({ pool: this.name, timeoutMs: this.timeoutMs, threadId: slot.worker.threadId }, 'reconciliation job timed out; replacing its worker');
    this.retire(slot);
    task.reject(new PoolTimeoutError(this.timeoutMs));
    this.replenish();
  }

  private onExit(slot: Slot<J, R>, code: number): void {
    if (slot.retired) return;
    this.slots.delete(slot);
    if (slot.timer) clearTimeout(slot.timer);
    const task = slot.task;
    slot.task = null;
    if (this.closed) return;
    this.counters.crashed += 1;
    const detail = slot.lastError ? `${slot.lastError.name}${'code' in slot.lastError ? ` ${String(slot.lastError.code)}` : ''}` : `exit code ${code}`;
    this.logger.error({ pool: this.name, exitCode: code, error: slot.lastError?.message, busy: task !== null }, 'reconciliation worker died; replacing it');
    task?.reject(new WorkerCrashedError(detail));
    this.replenish();
  }

  private retire(slot: Slot<J, R>): void {
    slot.retired = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.task = null;
    this.slots.delete(slot);
    void slot.worker.terminate();
  }

  /** After losing a worker: start a replacement if work waits (or the pool is kept warm). */
  private replenish(): void {
    if (this.closed) return;
    if (this.keepWarm) while (this.slots.size < this.size) this.spawn();
    this.pump();
  }

  /** Hands waiting jobs to idle (or newly started) workers. */
  private pump(): void {
    while (!this.closed && this.queue.length > 0) {
      const slot = this.idleSlot() ?? (this.slots.size < this.size ? this.spawn() : null);
      if (slot === null) return;
      this.dispatch(slot, this.queue.shift()!);
    }
  }
}

function whole(value: number, name: string, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`pool ${name} must be a whole number >= ${min}`);
  return value;
}

/** Memory ceiling per worker: a runaway job kills its worker (replaced), not the server. */
const WORKER_RESOURCE_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 1024 };

/**
 * The reconciliation worker, from the build or from source. After `npm run build` this module is
 * dist/reconcile/pool.js and the worker is dist/reconcile/worker.js, plain JavaScript. When this
 * module is a .ts file we run under tsx, and the worker needs tsx's loader as well; on Node 20 a
 * worker's `execArgv: ['--import', 'tsx']` does not reach the worker's own module loading
 * (ERR_UNKNOWN_FILE_EXTENSION), so a two-line bootstrap registers tsx through its API and then
 * imports worker.ts. tsx is resolved from here, not from the working directory. Parent flags
 * (--test, --import) are never passed on.
 */
export function createReconcileWorker(): Worker {
  const options = { execArgv: [], resourceLimits: WORKER_RESOURCE_LIMITS, name: 'reconcile-worker' };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker.js', import.meta.url), options);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export type ReconcilePool = WorkerPool<ReconcileJob, ReconcileResult>;

export function createReconcilePool(options: Omit<WorkerPoolOptions, 'createWorker'> = {}): ReconcilePool {
  return new WorkerPool<ReconcileJob, ReconcileResult>(options);
}
