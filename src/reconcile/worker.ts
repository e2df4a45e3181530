// The reconciliation worker thread: receives one job at a time from the pool (src/reconcile/pool.ts),
// runs the engine synchronously (CPU-bound, seconds for 10,000 records) and posts the result back.
// Loaded as worker.ts through tsx in development and tests, as dist/reconcile/worker.js after a build.
import { isMainThread, parentPort } from 'node:worker_threads';
import {
  reconcileAppointments,
  reconcilePatients,
  reconcileTransactions,
  type TransactionOptions,
  type PracticeAppointment,
  type PracticePatient,
  type ReconcileOptions,
  type ReconcileResult,
} from './engine/engine.js';

export type ReconcileJob =
  | { target: 'PATIENTS'; practice: PracticePatient[]; incoming: unknown[]; options: ReconcileOptions }
  | { target: 'APPOINTMENTS'; practice: PracticeAppointment[]; incoming: unknown[]; options: ReconcileOptions }
  /** Redemptions (incoming) against sales; saleIds name the sales (default: see saleEntityIds). */
  | { target: 'TRANSACTIONS'; sales: unknown[]; saleIds?: string[]; incoming: unknown[]; options: TransactionOptions };

/** Parent -> worker. */
export interface JobMessage<J = unknown> {
  id: number;
  job: J;
}

/** Worker -> parent. Errors carry only name and message (never record contents). */
export type ResultMessage<R = unknown> =
  | { id: number; ok: true; result: R; elapsedMs: number }
  | { id: number; ok: false; error: { name: string; message: string }; elapsedMs: number };

export function runJob(job: ReconcileJob): ReconcileResult {
  switch (job.target) {
    case 'APPOINTMENTS': return reconcileAppointments(job.practice, job.incoming, job.options);
    case 'TRANSACTIONS': return reconcileTransactions(job.incoming, job.sales, job.options, job.saleIds);
    default: return reconcilePatients(job.practice, job.incoming, job.options);
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  port.on('message', (message: JobMessage<ReconcileJob>) => {
    const started = performance.now();
    let reply: ResultMessage<ReconcileResult>;
    try {
      reply = { id: message.id, ok: true, result: runJob(message.job), elapsedMs: performance.now() - started };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      reply = { id: message.id, ok: false, error: { name: err.name, message: err.message }, elapsedMs: performance.now() - started };
    }
    port.postMessage(reply);
  });
}
