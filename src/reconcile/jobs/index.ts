// Reconciliation jobs wired into an app: the /v2/reconciliations routes and this instance's
// runner, sharing the engine's circuit breaker and worker-pool code with POST /ai/reconcile.
import type { FastifyInstance } from 'fastify';
import type { CircuitBreaker } from '../../resilience/circuit-breaker.js';
import { reconciliationJobRoutes } from '../http/routes.js';
import { createReconcilePool } from '../pool.js';
import { ReconcileJobRunner } from './runner.js';
import { JobVault } from './sealed.js';

/** Interrupted runs (SIGKILL, a lost machine) after which a job is failed instead of run again. */
const MAX_ATTEMPTS = 3;

export async function registerReconciliationJobs(app: FastifyInstance, breaker: CircuitBreaker): Promise<{ stop: () => Promise<void>; runner: ReconcileJobRunner | null }> {
  const settings = app.config.reconcile.jobs;
  const vault = new JobVault(app.config.encryptionKey);
  // Its own pool of the same workers: a long job must not hold the workers POST /ai/reconcile
  // answers with, and it has a longer timeout. One worker, one job at a time per instance.
  const pool = createReconcilePool({ size: 1, queueLimit: 0, timeoutMs: settings.timeoutMs, logger: app.log.child({ component: 'reconcile-jobs' }), name: 'reconcile-jobs' });
  const runner = settings.enabled
    ? new ReconcileJobRunner({ db: app.db, pool, breaker, vault, keyring: app.keyring, log: app.log, leaseMs: settings.leaseMs, pollMs: settings.pollMs, maxAttempts: MAX_ATTEMPTS })
    : null;
  await app.register(reconciliationJobRoutes, { prefix: '/v2', vault, breaker, wake: () => runner?.kick() });
  runner?.start();
  return {
    runner,
    stop: async () => {
      await runner?.stop();
      await pool.close();
    },
  };
}
