// POST /vN/ai/reconcile (blueprint 1.5) and GET /vN/ai/reconcile/{runId}, the same under /v1 and /v2.
//
// A request goes: validate (400 with field details) -> breaker and queue checked before any
// work (503 + Retry-After) -> the practice's records loaded in a practice-scoped transaction ->
// the engine run on a worker thread through the circuit breaker (blueprint 3.2), so the event loop
// keeps serving other requests -> the run stored and audited in one transaction -> 200.
// No transaction is held while the engine runs: a 2-second job must not pin a database connection.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { principalOf } from '../auth/guard.js';
import { changeBy } from '../events/outbox.js';
import { hasPermission } from '../auth/rbac.js';
import { withPractice } from '../db/scope.js';
import { AppError, forbidden, notFound, validationError, type ErrorDetail } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid } from '../http/pagination.js';
import { CircuitBreaker, CircuitOpenError, type BreakerSnapshot } from '../resilience/circuit-breaker.js';
import type { PracticeAppointment, PracticePatient, ReconcileResult } from './engine/engine.js';
import { normaliseKey, recogniseKey } from './engine/fields.js';
import {
  createReconcilePool,
  JobFailedError,
  PoolClosedError,
  PoolSaturatedError,
  PoolTimeoutError,
  WorkerCrashedError,
  type PoolStats,
} from './pool.js';
import { findRun, insertRun, loadPracticeAppointments, loadPracticePatients, type ReconcileTarget } from './runs.js';
import {
  ReconcileRequest,
  ReconcileResponse,
  ReconcileRun,
  ReconciliationMatch,
  RunParams,
} from './schema.js';
import type { ReconcileJob } from './worker.js';

/** What the routes need from the pool; tests inject stubs that fail on purpose. */
export interface ReconcileRunner {
  run(job: ReconcileJob): Promise<ReconcileResult>;
  /** Throws PoolSaturatedError when run() would be refused. */
  assertCapacity(): void;
  stats(): PoolStats;
  warm?(): void;
  close(): Promise<void>;
}

export interface ReconcileRouteOptions {
  /** The worker pool; default: one built from config.reconcile. Closed with the app. */
  pool?: ReconcileRunner;
  /** The breaker; default: the blueprint's (5 failures, 60 s, 10 s) from config.reconcile. Closed with the app. */
  breaker?: CircuitBreaker;
}

export const AI_SERVICE_UNAVAILABLE = 'AI_SERVICE_UNAVAILABLE';

/** Refusals for load, not faults: they neither open nor close the circuit. */
export const isLoadShedding = (error: unknown) => error instanceof PoolSaturatedError || error instanceof PoolClosedError;

/** Unknown canonical names in fieldMapping are refused: a typo would otherwise silently drop a column. */
function fieldMappingDetails(fieldMapping: Record<string, string> | undefined): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  for (const [key, target] of Object.entries(fieldMapping ?? {})) {
    const normalised = normaliseKey(target);
    if (normalised === '' || normalised === 'ignore' || normalised === 'none') continue;
    if (recogniseKey(target) === null) {
      details.push({ field: `fieldMapping.${key}`, message: `"${target.slice(0, 100)}" is not a known field (use firstName, lastName, dateOfBirth, email, phone, postalCode, ... or "ignore")` });
    }
  }
  return details;
}

/**
 * How deep a record may nest objects and arrays. Exports nest a level or two (the engine reads
 * three); a record nested thousands deep is no export, and copying it to a worker would overflow
 * the stack: a 500 that counted against the circuit breaker, so a few such requests closed
 * reconciliation for everyone. Refused here instead, as the client's error.
 */
export const MAX_RECORD_NESTING = 32;

/**
 * Whether `value` (an object or array) nests objects or arrays more than `levels` deep. Recursive
 * but bounded: it stops descending at the limit, so the stack never holds more than `levels`
 * frames, and it allocates nothing per node (a 25 MB body of tiny arrays stays cheap).
 */
function nestsDeeperThan(value: object, levels: number): boolean {
  if (levels === 0) return true;
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (child !== null && typeof child === 'object' && nestsDeeperThan(child, levels - 1)) return true;
  }
  return false;
}

/** One detail per record of `data` nested too deep (the body is JSON: only plain objects and arrays). */
export function nestingDetails(data: readonly unknown[]): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  data.forEach((record, index) => {
    if (record !== null && typeof record === 'object' && nestsDeeperThan(record, MAX_RECORD_NESTING)) {
      details.push({ field: `data.${index}`, message: `nests objects or arrays more than ${MAX_RECORD_NESTING} levels deep` });
    }
  });
  return details;
}

function unavailable(message: string, retryAfterSeconds: number | undefined): AppError {
  return new AppError(
    AI_SERVICE_UNAVAILABLE,
    503,
    message,
    [],
    retryAfterSeconds === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  );
}

/** The client-facing answer for a refusal or a failure of the engine; never the engine's own message. */
function toHttpError(error: unknown, breaker: CircuitBreaker, timeoutMs: number): unknown {
  if (error instanceof CircuitOpenError) {
    return unavailable(
      error.state === 'OPEN'
        ? 'Reconciliation is temporarily unavailable after repeated failures; retry after the time in Retry-After'
        : 'Reconciliation is being re-tested after failures; retry shortly',
      error.retryAfterSeconds,
    );
  }
  if (error instanceof PoolSaturatedError) {
    return unavailable('Reconciliation is at capacity (every worker busy and the queue full); retry shortly', error.retryAfterSeconds);
  }
  if (error instanceof PoolClosedError) return unavailable('The server is shutting down; retry on another instance', 1);
  // A failure of the job itself: say what happened, and when to retry if it opened the circuit.
  const openFor = breaker.retryAfterMs();
  const retry = openFor === null ? undefined : openFor / 1000;
  if (error instanceof PoolTimeoutError) {
    return unavailable(`Reconciliation did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped`, retry);
  }
  if (error instanceof WorkerCrashedError || error instanceof JobFailedError) {
    return unavailable('Reconciliation failed unexpectedly; the failure was logged', retry);
  }
  return error;
}

function readinessDetail(snapshot: BreakerSnapshot, stats: PoolStats): string {
  const pool = `workers ${stats.busy}/${stats.size} busy, ${stats.queued}/${stats.queueLimit} queued`;
  if (snapshot.state === 'OPEN' && snapshot.halfOpenAt !== null) {
    return `breaker OPEN until ${new Date(snapshot.halfOpenAt).toISOString()} (POST /v1/ai/reconcile answers 503); ${pool}`;
  }
  return `breaker ${snapshot.state}; ${pool}`;
}

/**
 * The pool and breaker, built from config.reconcile where `options` doesn't bring them. app.ts
 * builds them once and hands them to every version's registration of the routes: one engine and
 * one circuit, whichever URL a request came through (closing them twice is harmless).
 */
export function reconcileEngine(app: FastifyInstance, options: ReconcileRouteOptions = {}): Required<ReconcileRouteOptions> {
  const settings = app.config.reconcile;
  const log = app.log.child({ component: 'reconcile' });
  const pool: ReconcileRunner =
    options.pool ??
    createReconcilePool({
      size: settings.workers,
      queueLimit: settings.queueLimit,
      timeoutMs: settings.timeoutMs,
      logger: log,
    });
  const breaker =
    options.breaker ??
    new CircuitBreaker({
      name: 'reconcile',
      failureThreshold: settings.breakerFailureThreshold,
      recoveryTimeoutMs: settings.breakerRecoveryMs,
      monitorIntervalMs: settings.breakerMonitorMs,
      // A full queue or a shutdown is load, not a broken engine: it neither opens nor closes the circuit.
      isFailure: (error) => !isLoadShedding(error),
      logger: log,
    });
  return { pool, breaker };
}

export const reconcileRoutes: FastifyPluginAsync<ReconcileRouteOptions> = async (plain, options) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const settings = app.config.reconcile;
  const { pool, breaker } = reconcileEngine(app, options);
  // Production starts its workers now, so the first request doesn't pay for their start-up;
  // tests and development start them on first use.
  if (app.config.nodeEnv === 'production') pool.warm?.();

  app.addSchema(ReconciliationMatch);

  // OPEN is reported as degraded, not as not-ready: the instance still serves patients,
  // appointments and everything else, and every instance would fail together anyway (the cause is
  // usually the input or the engine, not this machine), so a load balancer gains nothing by
  // pulling them all. The 503s of the endpoint itself carry Retry-After.
  app.readinessChecks.set('reconciliation', async () => {
    const snapshot = breaker.snapshot();
    const detail = readinessDetail(snapshot, pool.stats());
    return snapshot.state === 'CLOSED' ? { ok: true, detail } : { ok: true, degraded: true, detail };
  });

  app.addHook('onClose', async () => {
    breaker.close();
    await pool.close();
  });

  app.post(
    '/ai/reconcile',
    {
      bodyLimit: settings.bodyLimitBytes,
      // The job's own timeout (RECONCILE_TIMEOUT_MS) decides; the request deadline only backs it up.
      // Idempotent on request (Idempotency-Key): a run is stored, and a retry after a timeout
      // should get that run back, not start a second one. Not 'transactional': the response is
      // stored once sent, so a crash in between leaves the key claimed (a retry is refused, not rerun).
      config: {
        permission: 'read:patients',
        requestTimeoutMs: app.config.reconcile.timeoutMs + 30_000,
        idempotent: true,
        // A replay discloses the same matches again: its audit event names them, as the run's did.
        replayedIds: (body) => [...new Set(((body as { matches?: Array<{ entityId: string }> }).matches ?? []).map((match) => match.entityId))],
      },
      // Before validation and before anything walks the body recursively (the Idempotency-Key
      // fingerprint, the copy to a worker): a record nested thousands deep would overflow the stack.
      preValidation: (request, _reply, done) => {
        const data = (request.body as { data?: unknown } | null)?.data;
        const problems = Array.isArray(data) ? nestingDetails(data) : [];
        done(problems.length > 0 ? validationError(problems) : undefined);
      },
      schema: {
        tags: ['AI'],
        summary: 'AI-powered data reconciliation',
        description:
          "Matches up to 10,000 records from another system (loyalty program, POS, previous EHR) to the practice's " +
          'patients (or completed appointments). Runs off the event loop in a worker pool behind a circuit breaker; ' +
          'the result is stored as a run (runId) and the access audited. 503 AI_SERVICE_UNAVAILABLE with Retry-After ' +
          'when the breaker is open or every worker is busy and the queue is full.',
        operationId: 'reconcileRecords',
        body: ReconcileRequest,
        response: { 200: ReconcileResponse, ...errorResponses(400, 401, 403, 413, 429, 503) },
      },
    },
    async (request) => {
      const started = performance.now();
      const principal = principalOf(request);
      const body = request.body;
      const algorithm = body.algorithm ?? 'HYBRID';
      const confidence = body.confidence ?? 0.8;
      const target: ReconcileTarget = body.target ?? 'PATIENTS';
      // The route declares read:patients; matching against appointments reads those too.
      if (target === 'APPOINTMENTS' && !hasPermission(principal.permissions, 'read:appointments')) {
        throw forbidden('Missing permission read:appointments (needed for target APPOINTMENTS)');
      }
      const oneToOne = body.oneToOne ?? false;
      const fieldMapping = body.fieldMapping as Record<string, string> | undefined;
      const mappingProblems = fieldMappingDetails(fieldMapping);
      if (mappingProblems.length > 0) throw validationError(mappingProblems);

      // Refuse before loading anything when the answer would be 503 anyway.
      try {
        breaker.assertAvailable();
        pool.assertCapacity();
      } catch (error) {
        throw toHttpError(error, breaker, settings.timeoutMs);
      }

      const practiceId = principal.practiceId;
      const practice = await app.keyring.withKeys(practiceId, (keys) =>
        withPractice<PracticePatient[] | PracticeAppointment[]>(app.db, practiceId, (tx) =>
          target === 'PATIENTS' ? loadPracticePatients(tx, keys, practiceId) : loadPracticeAppointments(tx, keys, practiceId),
        ),
      );
      const options = { algorithm, confidence, oneToOne, ...(fieldMapping ? { fieldMapping } : {}) };
      const job: ReconcileJob =
        target === 'PATIENTS'
          ? { target, practice: practice as PracticePatient[], incoming: body.data, options }
          : { target, practice: practice as PracticeAppointment[], incoming: body.data, options };

      let result: ReconcileResult;
      try {
        result = await breaker.execute(() => pool.run(job));
      } catch (error) {
        const failed = !isLoadShedding(error) && !(error instanceof CircuitOpenError);
        if (failed) {
          request.log.error(
            { component: 'reconcile', err: { name: (error as Error).name, message: (error as Error).message }, breaker: breaker.state },
            'reconciliation job failed',
          );
          // The practice's records were read for this request even though nothing was returned.
          await withPractice(app.db, practiceId, (tx) =>
            recordAudit(tx, {
              ...requestOrigin(request),
              practiceId,
              actorType: principal.kind,
              actorId: principal.id,
              action: 'reconciliation.run',
              resourceType: target === 'PATIENTS' ? 'patient' : 'appointment',
              outcome: 'failure',
              details: { algorithm, target, records: body.data.length, candidates: practice.length, reason: (error as Error).name },
            }),
          ).catch((auditError: unknown) => request.log.error({ err: auditError }, 'could not audit a failed reconciliation'));
        }
        throw toHttpError(error, breaker, settings.timeoutMs);
      }
      const processingTime = Math.round((performance.now() - started) * 10) / 10;

      const run = await withPractice(app.db, practiceId, async (tx) => {
        const stored = await insertRun(tx, {
          practiceId,
          createdBy: { type: principal.kind, id: principal.id },
          algorithm,
          target,
          confidenceThreshold: confidence,
          oneToOne,
          recordCount: body.data.length,
          candidateCount: practice.length,
          matches: result.matches,
          unmatched: result.unmatched,
          meanConfidence: result.confidence,
          processingMs: processingTime,
        });
        await recordAudit(tx, {
          ...requestOrigin(request),
          practiceId,
          actorType: principal.kind,
          actorId: principal.id,
          action: 'reconciliation.run',
          resourceType: target === 'PATIENTS' ? 'patient' : 'appointment',
          // Every practice record disclosed as a match (at most 10,000 ids); the run keeps the detail.
          resourceIds: [...new Set(result.matches.map((match) => match.entityId))],
          outcome: 'success',
          details: {
            runId: stored.id,
            algorithm,
            target,
            records: body.data.length,
            matched: result.matches.length,
            unmatched: result.unmatched.length,
            candidates: practice.length,
            confidenceThreshold: confidence,
          },
        });
        await app.events.record(tx, {
          ...changeBy(principal),
          type: 'reconciliation.completed',
          resourceId: stored.id,
          refs: { target, algorithm, records: body.data.length, matched: result.matches.length, unmatched: result.unmatched.length },
        });
        return stored;
      });

      request.log.info(
        {
          component: 'reconcile',
          runId: run.id,
          algorithm,
          target,
          records: body.data.length,
          candidates: practice.length,
          matched: result.matches.length,
          processingTime,
          comparisons: result.stats.compared,
        },
        'reconciliation run',
      );
      return {
        runId: run.id,
        matches: result.matches,
        confidence: result.confidence,
        processingTime,
        unmatched: result.unmatched,
        algorithm: result.algorithm,
        target,
      };
    },
  );

  app.get(
    '/ai/reconcile/:runId',
    {
      // Reading a stored run is cheap: it counts against the overall budget, not the 10-an-hour
      // budget of running a reconciliation.
      config: { permission: 'read:patients', rateLimit: { name: 'global' } },
      schema: {
        tags: ['AI'],
        summary: 'Get a stored reconciliation run',
        description: 'The result of an earlier POST /ai/reconcile of this practice, as it was returned, with who ran it and when.',
        operationId: 'getReconciliationRun',
        params: RunParams,
        response: { 200: ReconcileRun, ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const practiceId = principal.practiceId;
      const run = await withPractice(app.db, practiceId, async (tx) => {
        const found = await findRun(tx, practiceId, request.params.runId);
        const origin = { ...requestOrigin(request), practiceId, actorType: principal.kind, actorId: principal.id, action: 'reconciliation.read' };
        if (found === null) {
          // A miss is recorded too, as for patients and appointments: probing for other practices'
          // runs should show in the log. Only a well-formed id is kept: anything else is the
          // caller's free text (it could be a name pasted into a URL).
          const asked = request.params.runId;
          await recordAudit(tx, { ...origin, resourceType: 'reconciliation_run', outcome: 'failure', details: isUuid(asked) ? { runId: asked } : { malformedId: true } });
          return null;
        }
        await recordAudit(tx, {
          ...origin,
          resourceType: found.target === 'PATIENTS' ? 'patient' : 'appointment',
          resourceIds: [...new Set(found.matches.map((match) => match.entityId))],
          outcome: 'success',
          details: { runId: found.id, matched: found.counts.matched },
        });
        return found;
      });
      if (run === null) throw notFound('Reconciliation run');
      const { id, ...rest } = run;
      return { runId: id, ...rest };
    },
  );
};
