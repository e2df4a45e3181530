// /v2/reconciliations: reconciliation as the clinic's monthly workflow (docs/reconciliation.md).
// Upload an export (CSV or JSON) -> 202 and a job -> the runner matches it in the background
// (jobs/runner.ts) -> review the matches by band -> decide -> apply -> export. Every route is
// practice-scoped; another practice's job is a 404 like an unknown one.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../../audit/audit.js';
import { principalOf, type Principal } from '../../auth/guard.js';
import { hasPermission } from '../../auth/rbac.js';
import { withPractice } from '../../db/scope.js';
import type { Queryable } from '../../db/database.js';
import { AppError, forbidden, notFound, unprocessable, validationError } from '../../http/errors.js';
import { errorResponses } from '../../http/openapi.js';
import { paginated, pagination } from '../../http/pagination.js';
import { validationDetails } from '../../http/error-handler.js';
import { PatientCreateV1, fromPatientWriteV1 } from '../../patients/schema.v1.js';
import type { CircuitBreaker } from '../../resilience/circuit-breaker.js';
import { recogniseKey } from '../engine/fields.js';
import { describeColumns, type ColumnReading } from '../input/columns.js';
import { TRANSACTION_DEFAULTS } from '../engine/transactions.js';
import { declaredCharset, acceptFileBodies, readUpload, type InputFile } from '../input/upload.js';
import { applyPatientDecisions, acceptedEntity } from '../review/apply.js';
import { allRecords, decideBand, findRecords, listRecords, markApplied, writeDecisions, type DecisionWrite, type RecordDetail, type RecordRow } from '../review/store.js';
import type { JobVault, PracticeJobVault } from '../jobs/sealed.js';
import { entityResourceType } from '../jobs/runner.js';
import { activeJobCount, cancelJob, findJob, insertJob, listJobs, setInputChunks, type JobRow, type SalesInput, type TransactionSettings } from '../jobs/store.js';
import {
  ApplyResult, CreateJobQuery, DEFAULT_REVIEW_FLOOR, DecisionsBody, DecisionsResult, ExportQuery, Job, JobListQuery, JobParams, LearnedModel, MatchesQuery, MatchRow,
  SaleRow, SalesQuery,
} from './schema.js';
import { currentModel, fitPracticeModel, recordLabels, type PracticeModel } from '../review/learning.js';
import { LEARNING_ALGORITHMS } from '../jobs/runner.js';
import { exportCsv, exportRows, exportSalesCsv } from './export.js';
import { saleLines } from '../review/sales.js';
import { saleEntityIds } from '../engine/transactions.js';

export interface ReconciliationJobRouteOptions {
  vault: JobVault;
  breaker: CircuitBreaker;
  /** Wakes this instance's runner after a job is queued. */
  wake: () => void;
}

const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString());
/** Rough matching speed used for the ETA before a job has a history: milliseconds per data row. */
const ESTIMATED_MS_PER_ROW = 0.4;

function progressOf(job: JobRow): Job['progress'] {
  const rows = job.rows_read;
  const now = new Date(job.now).getTime();
  const since = job.phase_started_at === null ? now : new Date(job.phase_started_at).getTime();
  const estimateMs = Math.max(1000, rows * ESTIMATED_MS_PER_ROW);
  let percent = 0;
  let eta: number | null = null;
  switch (job.phase) {
    case 'queued': percent = 0; break;
    case 'loading': percent = 5; eta = (estimateMs * 1.2) / 1000; break;
    case 'scoring': {
      const share = Math.min(0.95, (now - since) / estimateMs);
      percent = 10 + 75 * share;
      eta = Math.max(1, (estimateMs - (now - since)) / 1000 + estimateMs * 0.2 / 1000);
      break;
    }
    case 'storing': percent = 85 + 15 * Math.min(1, job.records_written / Math.max(1, rows)); eta = (estimateMs * 0.2) / 1000; break;
    case 'done': percent = 100; break;
  }
  if (job.status !== 'running' && job.status !== 'queued') { percent = job.status === 'succeeded' ? 100 : percent; eta = null; }
  return { phase: job.phase, rowsRead: rows, pairsScored: Number(job.pairs_scored), percent: Math.round(percent * 10) / 10, etaSeconds: eta === null ? null : Math.round(eta) };
}

export function toJob(job: JobRow): Job {
  const created = new Date(job.created_at).getTime();
  const started = job.started_at === null ? null : new Date(job.started_at).getTime();
  const finished = job.finished_at === null ? null : new Date(job.finished_at).getTime();
  const now = new Date(job.now).getTime();
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    algorithm: job.algorithm,
    confidence: Number(job.confidence_threshold),
    reviewFloor: Number(job.review_floor),
    source: job.source,
    progress: progressOf(job),
    counts: {
      rows: job.rows_read, accepted: job.accepted_count, review: job.review_count, unmatched: job.unmatched_count,
      badRows: job.options.badRowCount, candidates: job.candidates,
    },
    timings: {
      createdAt: iso(job.created_at)!, startedAt: iso(job.started_at), finishedAt: iso(job.finished_at), appliedAt: iso(job.applied_at),
      queuedMs: started === null ? (finished === null ? now - created : null) : started - created,
      runningMs: started === null ? null : (finished ?? now) - started,
    },
    input: {
      format: job.options.format, fileName: job.file_name, bytes: Number(job.file_bytes), encoding: job.options.encoding,
      delimiter: job.options.delimiter, columns: job.columns, badRows: job.bad_rows,
      sales: job.options.sales ?? null,
    },
    createdBy: { type: job.created_by_type, id: job.created_by_id },
    error: job.error_code === null ? null : { code: job.error_code, message: job.error_message ?? '' },
    modelVersion: job.options.modelVersion ?? null,
  };
}

function parseFieldMapping(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw validationError([{ field: 'fieldMapping', message: 'must be a JSON object of column -> field' }]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw validationError([{ field: 'fieldMapping', message: 'must be a JSON object whose values are field names' }]);
  }
  const mapping = parsed as Record<string, string>;
  const unknown = Object.entries(mapping).filter(([, target]) => !/^(ignore|none|)$/i.test(target.trim()) && recogniseKey(target) === null);
  if (unknown.length > 0) {
    throw validationError(unknown.map(([key, target]) => ({ field: `fieldMapping.${key.slice(0, 100)}`, message: `"${target.slice(0, 100)}" is not a known field (firstName, lastName, dateOfBirth, email, phone, memberId, ... or "ignore")` })));
  }
  return mapping;
}

/** A transactions file must have a date and an amount column: without them nothing can be matched. */
function requireTransactionColumns(name: 'redemptions' | 'sales', columns: readonly ColumnReading[]): void {
  const read = new Set(columns.map((c) => c.readAs));
  const missing = [
    ...(read.has('serviceDate') ? [] : ['a date']),
    ...(read.has('amount') || read.has('amountCents') ? [] : ['an amount']),
  ];
  if (missing.length === 0) return;
  throw new AppError('INVALID_FILE', 400, `The ${name} file needs ${missing.join(' and ')} column (e.g. "Date", "Amount"); name it in fieldMapping if it is called otherwise`,
    columns.slice(0, 100).map((c) => ({ field: `${name}.${c.column.slice(0, 100)}`, message: c.readAs === null ? 'not recognised' : `read as ${c.readAs}` })));
}

/** The model as GET /reconciliations/model shows it (version 0 before any label). */
function describeModel(model: PracticeModel | null): LearnedModel {
  const usedBy = [...LEARNING_ALGORITHMS];
  if (model === null) {
    return { version: 0, status: 'no labels yet', trainingSetSize: 0, labels: { matches: 0, nonMatches: 0 }, metrics: null, usedBy, jobId: null, createdAt: null };
  }
  return {
    version: model.version, status: 'trained', trainingSetSize: model.trainingSize,
    labels: { matches: model.matchCount, nonMatches: model.nonMatchCount }, metrics: model.metrics, usedBy, jobId: model.jobId, createdAt: model.createdAt,
  };
}

/** The named job schema (components.schemas.ReconciliationJob), referred to by the list. */
const JobRef = Type.Unsafe<Job>({ $ref: 'ReconciliationJob#' });

const jobNotFound = () => notFound('Reconciliation job');

/** Who acts, from where: the common part of every audit event of these routes. */
const actorOf = (request: FastifyRequest, principal: Principal) => ({
  ...requestOrigin(request), practiceId: principal.practiceId, actorType: principal.kind, actorId: principal.id,
});

async function requireJob(tx: Queryable, principal: Principal, id: string, forUpdate = false): Promise<JobRow> {
  const job = await findJob(tx, principal.practiceId, id, forUpdate);
  if (job === null) throw jobNotFound();
  return job;
}

function requireSucceeded(job: JobRow): void {
  if (job.status !== 'succeeded') {
    throw new AppError('JOB_NOT_READY', 409, `The job is ${job.status}; matches exist once it has succeeded`);
  }
}

export const reconciliationJobRoutes: FastifyPluginAsync<ReconciliationJobRouteOptions> = async (plain, options) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const settings = app.config.reconcile.jobs;
  const { vault, breaker } = options;
  await acceptFileBodies(app, settings.maxBytes);
  app.addSchema(Job);

  app.post(
    '/reconciliations',
    {
      bodyLimit: settings.maxBytes,
      config: { permission: 'read:patients', requestTimeoutMs: 10 * 60_000 },
      schema: {
        tags: ['AI'],
        summary: 'Start a reconciliation job from an export file',
        description:
          'The body is the file: `text/csv` (streamed; `;`, tab or `|` separators and Windows-1252 detected, or `charset`), ' +
          '`application/json` (an array of records or `{"data": [...]}`), or `multipart/form-data` with the field `file` ' +
          '(TRANSACTIONS: `redemptions` and `sales`; with `redemptions` alone, or a text/csv body, the practice\'s completed appointments are the sales). ' +
          'Up to 200,000 rows and 100 MB. Answers 202 with the job and its Location; ' +
          'GET it for progress. A file that cannot be read is a 400 naming the line and column; with `onRowError=skip` the bad rows ' +
          'are reported on the job and the rest processed. 503 with Retry-After when the practice already has its share of jobs queued or the engine is unavailable.',
        operationId: 'createReconciliationJob',
        querystring: CreateJobQuery,
        response: { 202: Job, ...errorResponses(400, 401, 403, 413, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const query = request.query;
      const kind = query.kind;
      if (kind !== 'PATIENTS' && !hasPermission(principal.permissions, 'read:appointments')) {
        throw forbidden(`Missing permission read:appointments (needed for kind ${kind})`);
      }
      const confidence = query.confidence ?? 0.8;
      const reviewFloor = query.reviewFloor ?? Math.min(DEFAULT_REVIEW_FLOOR, confidence);
      if (reviewFloor > confidence) throw validationError([{ field: 'reviewFloor', message: 'must not be above confidence' }]);
      const fieldMapping = parseFieldMapping(query.fieldMapping);
      const charset = declaredCharset(query.charset);
      try {
        breaker.assertAvailable();
      } catch (error) {
        const retry = (error as { retryAfterSeconds?: number }).retryAfterSeconds ?? 60;
        throw new AppError('AI_SERVICE_UNAVAILABLE', 503, 'Reconciliation is temporarily unavailable after repeated failures; retry after the time in Retry-After', [], { 'retry-after': String(Math.max(1, Math.ceil(retry))) });
      }
      const practiceId = principal.practiceId;
      const active = await withPractice(app.db, practiceId, (tx) => activeJobCount(tx, practiceId));
      if (active >= settings.queueLimit) {
        throw new AppError('SERVICE_UNAVAILABLE', 503, `The practice already has ${active} reconciliation jobs queued or running (the limit); retry when one has finished`, [], { 'retry-after': '30' });
      }

      const fields = kind === 'TRANSACTIONS' ? ['redemptions', 'sales', 'file'] : ['file'];
      const files = await readUpload(request, { maxRows: settings.maxRows, maxBytes: settings.maxBytes, charset, onRowError: query.onRowError ?? 'fail', fields });
      const file: InputFile | undefined = kind === 'TRANSACTIONS' ? (files.get('redemptions') ?? files.get('file')) : files.get('file');
      if (file === undefined) {
        throw validationError([kind === 'TRANSACTIONS'
          ? { field: 'redemptions', message: 'send the redemptions file (as the body, or the multipart field "redemptions"), and optionally the sales file (field "sales"); without it the practice\'s own completed appointments are the sales' }
          : { field: 'file', message: 'send the export as the body (text/csv or application/json) or as the multipart field "file"' }]);
      }
      const columns = describeColumns(file.header, fieldMapping);
      const salesFile = kind === 'TRANSACTIONS' ? files.get('sales') : undefined;
      const salesColumns = salesFile === undefined ? [] : describeColumns(salesFile.header, fieldMapping);
      if (kind === 'TRANSACTIONS') {
        requireTransactionColumns('redemptions', columns);
        if (salesFile !== undefined) requireTransactionColumns('sales', salesColumns);
      } else if (!columns.some((c) => c.readAs !== null)) {
        throw new AppError('INVALID_FILE', 400, 'None of the columns could be read as a field (name, date of birth, email, phone, member id, ...): name them in fieldMapping', columns.slice(0, 100).map((c) => ({ field: c.column.slice(0, 100), message: 'not recognised' })));
      }
      const sales: SalesInput | undefined = kind !== 'TRANSACTIONS' ? undefined : salesFile === undefined
        ? { source: 'practice', fileName: null, rows: 0, bytes: 0, columns: [] }
        : { source: 'file', fileName: salesFile.fileName, rows: salesFile.rows.length, bytes: salesFile.bytes, columns: salesColumns };
      const transactions: TransactionSettings | undefined = kind !== 'TRANSACTIONS' ? undefined : {
        maxLagDays: query.maxLagDays ?? TRANSACTION_DEFAULTS.maxLagDays,
        maxRedemptionsPerSale: query.maxRedemptionsPerSale ?? TRANSACTION_DEFAULTS.maxRedemptionsPerSale,
        amountToleranceCents: query.amountToleranceCents ?? TRANSACTION_DEFAULTS.amountToleranceCents,
        amountTolerancePercent: query.amountTolerancePercent ?? TRANSACTION_DEFAULTS.amountTolerancePercent,
      };

      const jobVault = vault.for(await app.keyring.forPractice(practiceId));
      const id = await withPractice(app.db, practiceId, async (tx) => {
        const jobId = await insertJob(tx, {
          practiceId, kind, algorithm: query.algorithm ?? 'HYBRID', confidence, reviewFloor, source: query.source ?? null,
          options: {
            oneToOne: query.oneToOne ?? false, ...(fieldMapping ? { fieldMapping } : {}), format: file.format, encoding: file.encoding, delimiter: file.delimiter,
            badRowCount: file.badRowCount + (salesFile?.badRowCount ?? 0), ...(sales ? { sales } : {}), ...(transactions ? { transactions } : {}),
          },
          columns, badRows: file.badRows, fileName: file.fileName, fileBytes: file.bytes, rowsRead: file.rows.length,
          createdBy: { type: principal.kind, id: principal.id },
        });
        await setInputChunks(tx, jobId, await jobVault.storeRows(tx, practiceId, jobId, 'input', file.rows));
        if (salesFile !== undefined) await jobVault.storeRows(tx, practiceId, jobId, 'practice_input', salesFile.rows);
        await recordAudit(tx, {
          ...actorOf(request, principal), action: 'reconciliation.job.create',
          resourceType: 'reconciliation_job', resourceIds: [jobId], outcome: 'success',
          details: { kind, rows: file.rows.length, badRows: file.badRowCount, bytes: file.bytes, format: file.format, ...(sales ? { sales: sales.source, salesRows: sales.rows } : {}) },
        });
        return jobId;
      });
      options.wake();
      const job = await withPractice(app.db, practiceId, (tx) => requireJob(tx, principal, id));
      void reply.header('location', `/v2/reconciliations/${id}`).code(202);
      return toJob(job);
    },
  );

  app.get(
    '/reconciliations',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'List reconciliation jobs', operationId: 'listReconciliationJobs',
        querystring: JobListQuery,
        response: { 200: paginated(JobRef), ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { page, limit, status } = request.query;
      const { jobs, total } = await withPractice(app.db, principal.practiceId, (tx) => listJobs(tx, principal.practiceId, page, limit, status));
      return { data: jobs.map(toJob), pagination: pagination(page, limit, total) };
    },
  );

  app.get(
    '/reconciliations/model',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'The practice\'s model learned from reviewers\' decisions: version, training set, metrics',
        description: 'Each apply of a PATIENTS job turns its decisions into labelled pairs (comparison levels only, no values) and makes a new version; the next PATIENTS job with ML_MODEL or HYBRID is scored with the latest (its `modelVersion`). A practice without labels gets version 0.',
        operationId: 'getReconciliationModel',
        response: { 200: LearnedModel, ...errorResponses(401, 403, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const model = await withPractice(app.db, principal.practiceId, (tx) => currentModel(tx, principal.practiceId));
      return describeModel(model);
    },
  );

  app.get(
    '/reconciliations/:id',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'A reconciliation job: status, progress, counts, timings, columns read', operationId: 'getReconciliationJob',
        params: JobParams, response: { 200: Job, ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return toJob(await withPractice(app.db, principal.practiceId, (tx) => requireJob(tx, principal, request.params.id)));
    },
  );

  app.delete(
    '/reconciliations/:id',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'Cancel a queued or running job (its uploaded rows are deleted)', operationId: 'cancelReconciliationJob',
        params: JobParams, response: { 200: Job, ...errorResponses(401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const job = await withPractice(app.db, principal.practiceId, async (tx) => {
        const found = await requireJob(tx, principal, request.params.id, true);
        if (!(await cancelJob(tx, principal.practiceId, found.id))) {
          throw new AppError('JOB_FINISHED', 409, `The job has already ${found.status === 'cancelled' ? 'been cancelled' : found.status}`);
        }
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.job.cancel', resourceType: 'reconciliation_job', resourceIds: [found.id], outcome: 'success',
        });
        return requireJob(tx, principal, found.id);
      });
      return toJob(job);
    },
  );

  const toMatch = (jobVault: PracticeJobVault, job: JobRow, record: RecordRow) => {
    const detail = jobVault.openDetail<RecordDetail>(job.id, record.record_index, record.detail_sealed);
    return {
      recordIndex: record.record_index,
      band: record.band,
      entityId: record.entity_id,
      confidence: Number(record.confidence),
      candidates: detail.candidates.map((c) => ({ entityId: c.entityId, confidence: c.confidence, evidence: c.evidence })),
      decision: record.decision,
      decidedEntityId: record.decided_entity_id,
      decidedBy: record.decided_by_type === null ? null : { type: record.decided_by_type, id: record.decided_by_id! },
      decidedAt: iso(record.decided_at),
      appliedAt: iso(record.applied_at),
      appliedEntityId: record.applied_entity_id,
      applyError: record.apply_error,
    };
  };

  app.get(
    '/reconciliations/:id/matches',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'The job\'s rows with their matches, candidates and evidence, by band', operationId: 'listReconciliationMatches',
        params: JobParams, querystring: MatchesQuery,
        response: { 200: paginated(MatchRow), ...errorResponses(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { page, limit, band, undecided } = request.query;
      const jobVault = vault.for(await app.keyring.forPractice(principal.practiceId));
      return withPractice(app.db, principal.practiceId, async (tx) => {
        const job = await requireJob(tx, principal, request.params.id);
        requireSucceeded(job);
        const { records, total } = await listRecords(tx, job.id, { band, undecided }, page, limit);
        const data = records.map((record) => toMatch(jobVault, job, record));
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.job.read', resourceType: entityResourceType(job),
          resourceIds: entityResourceType(job) === 'reconciliation_job' ? [job.id] : [...new Set(data.flatMap((d) => d.candidates.map((c) => c.entityId)))], outcome: 'success',
          details: { jobId: job.id, band: band ?? null, page },
        });
        return { data, pagination: pagination(page, limit, total) };
      });
    },
  );

  app.get(
    '/reconciliations/:id/sales',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'TRANSACTIONS: the sales side, with the redemptions linked to each; linked=false lists the unmatched sales', operationId: 'listReconciliationSales',
        params: JobParams, querystring: SalesQuery,
        response: { 200: paginated(SaleRow), ...errorResponses(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { page, limit, linked } = request.query;
      const jobVault = vault.for(await app.keyring.forPractice(principal.practiceId));
      return withPractice(app.db, principal.practiceId, async (tx) => {
        const job = await requireJob(tx, principal, request.params.id);
        requireSucceeded(job);
        if (job.kind !== 'TRANSACTIONS') throw validationError([{ field: 'id', message: 'the sales side is for TRANSACTIONS jobs' }]);
        const lines = await salesOfJob(tx, jobVault, job);
        const chosen = linked === undefined ? lines : lines.filter((line) => (line.linkedBy.length > 0) === linked);
        const data = chosen.slice((page - 1) * limit, page * limit);
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.job.read', resourceType: entityResourceType(job),
          resourceIds: entityResourceType(job) === 'reconciliation_job' ? [job.id] : data.map((line) => line.entityId), outcome: 'success',
          details: { jobId: job.id, sales: true, linked: linked ?? null, page },
        });
        return { data, pagination: pagination(page, limit, chosen.length) };
      });
    },
  );

  app.post(
    '/reconciliations/:id/decisions',
    {
      config: { permission: 'write:patients', idempotent: false },
      schema: {
        tags: ['AI'], summary: 'Decide rows: accept, reject, choose another candidate, or mark as a new patient (one by one or a whole band)',
        operationId: 'decideReconciliationMatches', params: JobParams, body: DecisionsBody,
        response: { 200: DecisionsResult, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body;
      const bulk = body.band !== undefined || body.action !== undefined;
      if (bulk === (body.decisions !== undefined)) {
        throw validationError([{ field: 'decisions', message: 'send either decisions, or band with action' }]);
      }
      if (bulk && (body.band === undefined || body.action === undefined)) {
        throw validationError([{ field: body.band === undefined ? 'band' : 'action', message: 'is required for a decision by band' }]);
      }
      const by = { type: principal.kind, id: principal.id };
      const jobVault = vault.for(await app.keyring.forPractice(principal.practiceId));
      return withPractice(app.db, principal.practiceId, async (tx) => {
        const job = await requireJob(tx, principal, request.params.id, true);
        requireSucceeded(job);
        let decided: number[];
        if (bulk) {
          decided = await decideBand(tx, job.id, by, body.band!, body.action!);
        } else {
          const wanted = body.decisions!;
          const indexes = [...new Set(wanted.map((d) => d.recordIndex))];
          if (indexes.length !== wanted.length) throw validationError([{ field: 'decisions', message: 'decides a row twice' }]);
          const rows = new Map((await findRecords(tx, job.id, indexes)).map((r) => [r.record_index, r]));
          const problems: { field: string; message: string }[] = [];
          const writes: DecisionWrite[] = [];
          wanted.forEach((d, i) => {
            const row = rows.get(d.recordIndex);
            if (row === undefined) return problems.push({ field: `decisions.${i}.recordIndex`, message: `the file has no data row ${d.recordIndex}` });
            if (row.applied_at !== null) return problems.push({ field: `decisions.${i}`, message: 'the row has already been applied' });
            if (d.action === 'accept' && row.entity_id === null) return problems.push({ field: `decisions.${i}.action`, message: 'the row has no match to accept: choose a candidate or mark it new' });
            if (d.action === 'choose') {
              const candidates = jobVault.openDetail<RecordDetail>(job.id, row.record_index, row.detail_sealed).candidates.map((c) => c.entityId);
              if (d.entityId === undefined || !candidates.includes(d.entityId)) return problems.push({ field: `decisions.${i}.entityId`, message: 'must be one of the row\'s candidates' });
            }
            if (d.action === 'new' && job.kind !== 'PATIENTS') return problems.push({ field: `decisions.${i}.action`, message: 'new is for PATIENTS jobs' });
            writes.push({ recordIndex: d.recordIndex, decision: d.action, entityId: d.action === 'choose' ? d.entityId! : d.action === 'accept' ? row.entity_id : null });
            return undefined;
          });
          if (problems.length > 0) throw unprocessable('INVALID_DECISION', 'Some decisions cannot be made; nothing was changed', problems);
          decided = await writeDecisions(tx, job.id, by, writes);
        }
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.decision', resourceType: 'reconciliation_job', resourceIds: [job.id], outcome: 'success',
          details: bulk ? { band: body.band, action: body.action, rows: decided.length } : { rows: decided.length, decisions: body.decisions!.slice(0, 200).map((d) => [d.recordIndex, d.action, d.entityId ?? null]) },
        });
        return { decided: decided.length, recordIndexes: decided.slice(0, 10_000) };
      });
    },
  );

  app.post(
    '/reconciliations/:id/apply',
    {
      config: { permission: 'write:patients', idempotent: false, requestTimeoutMs: 5 * 60_000, optionalBody: true },
      schema: {
        tags: ['AI'], summary: 'Apply the decisions: store accepted member ids on the patients, create the new patients',
        operationId: 'applyReconciliationJob', params: JobParams,
        response: { 200: ApplyResult, ...errorResponses(401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const validateRow = request.compileValidationSchema(PatientCreateV1, 'body');
      const checkSchema = (row: unknown, index: number) =>
        validateRow(row) ? [] : validationDetails((validateRow.errors ?? []) as Parameters<typeof validationDetails>[0], 'body').map((d) => ({ field: `patients.${index}.${d.field}`, message: d.message }));
      // Keys before the transaction: on PGlite a key read inside it would wait for it.
      const keys = await app.keyring.forPractice(principal.practiceId);
      const jobVault = vault.for(keys);
      return withPractice(app.db, principal.practiceId, async (tx) => {
        const job = await requireJob(tx, principal, request.params.id, true);
        requireSucceeded(job);
        const records = await allRecords(tx, job.id);
        let outcome: { applied: { recordIndex: number; entityId: string | null; error: string | null }[]; linked: string[]; created: string[] };
        let labelled = 0;
        let model: PracticeModel | null = null;
        if (job.kind === 'PATIENTS') {
          const rows = await jobVault.loadRowRange(tx, job.id, 'input', 0, job.rows_read);
          outcome = await applyPatientDecisions(tx, {
            practiceId: principal.practiceId, keys, source: job.source, fieldMapping: job.options.fieldMapping, records, rows, checkSchema, fromWrite: fromPatientWriteV1,
          });
          labelled = await recordLabels(tx, { practiceId: principal.practiceId, jobId: job.id, keys, fieldMapping: job.options.fieldMapping, records, rows });
          if (labelled > 0) model = await fitPracticeModel(tx, principal.practiceId, job.id, Number(job.confidence_threshold));
        } else {
          const applied = records.filter((r) => r.applied_at === null && (acceptedEntity(r) !== null || r.decision === 'reject'))
            .map((r) => ({ recordIndex: r.record_index, entityId: acceptedEntity(r), error: null }));
          outcome = { applied, linked: [], created: [] };
        }
        await markApplied(tx, job.id, outcome.applied);
        await tx.query(`UPDATE reconciliation_jobs SET applied_at = now() WHERE id = $1`, [job.id]);
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.apply', resourceType: 'patient', resourceIds: [...new Set([...outcome.linked, ...outcome.created])], outcome: 'success',
          details: { jobId: job.id, linked: outcome.linked.length, created: outcome.created.length, failed: outcome.applied.filter((a) => a.error !== null).length, labelled, modelVersion: model?.version ?? null },
        });
        return {
          linked: outcome.linked.length,
          created: outcome.created.length,
          failed: outcome.applied.filter((a) => a.error !== null).length,
          rows: outcome.applied,
          labelled,
          modelVersion: model?.version ?? null,
        };
      });
    },
  );

  /** TRANSACTIONS: every sale the job matched against, with the redemption rows linked to it now. */
  const salesOfJob = async (tx: Queryable, jobVault: PracticeJobVault, job: JobRow) => {
    const saleRows = await jobVault.loadRows(tx, job.id, 'practice_input');
    return saleLines(await allRecords(tx, job.id), saleEntityIds(saleRows, job.options.fieldMapping), saleRows);
  };

  /** TRANSACTIONS: the sales no redemption links to now (see review/sales.ts). */
  const exportUnmatchedSales = async (request: FastifyRequest, jobId: string, reply: FastifyReply, principal: Principal, format: 'csv' | 'json') => {
    const jobVault = vault.for(await app.keyring.forPractice(principal.practiceId));
    const { job, lines } = await withPractice(app.db, principal.practiceId, async (tx) => {
      const found = await requireJob(tx, principal, jobId);
      requireSucceeded(found);
      if (found.kind !== 'TRANSACTIONS') throw validationError([{ field: 'rows', message: 'unmatched-sales is for TRANSACTIONS jobs' }]);
      const unmatched = (await salesOfJob(tx, jobVault, found)).filter((line) => line.linkedBy.length === 0);
      await recordAudit(tx, {
        ...actorOf(request, principal),
        action: 'reconciliation.export', resourceType: 'reconciliation_job', resourceIds: [found.id], outcome: 'success',
        details: { format, rows: 'unmatched-sales', count: unmatched.length },
      });
      return { job: found, lines: unmatched };
    });
    void reply.header('content-disposition', `attachment; filename="reconciliation-${job.id}-unmatched-sales.${format}"`).header('cache-control', 'no-store');
    if (format === 'json') return reply.type('application/json').send(JSON.stringify({ jobId: job.id, kind: job.kind, sales: lines }));
    const columns = lines.length === 0 ? [] : Object.keys(lines[0]!.row);
    return reply.type('text/csv; charset=utf-8').send(exportSalesCsv(job.options.sales?.columns.map((c) => c.column) ?? columns, lines));
  };

  app.get(
    '/reconciliations/:id/export',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['AI'], summary: 'The decisions and exceptions as CSV (or JSON), with the file\'s own columns', operationId: 'exportReconciliationJob',
        params: JobParams, querystring: ExportQuery,
        response: { ...errorResponses(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const format = request.query.format ?? 'csv';
      const which = request.query.rows ?? 'all';
      if (which === 'unmatched-sales') return exportUnmatchedSales(request, request.params.id, reply, principal, format);
      const jobVault = vault.for(await app.keyring.forPractice(principal.practiceId));
      const { job, lines } = await withPractice(app.db, principal.practiceId, async (tx) => {
        const found = await requireJob(tx, principal, request.params.id);
        requireSucceeded(found);
        const records = await allRecords(tx, found.id);
        const rows = await jobVault.loadRowRange(tx, found.id, 'input', 0, found.rows_read);
        const exported = exportRows(found, records, rows, which, (record) => jobVault.openDetail<RecordDetail>(found.id, record.record_index, record.detail_sealed));
        await recordAudit(tx, {
          ...actorOf(request, principal),
          action: 'reconciliation.export', resourceType: 'reconciliation_job', resourceIds: [found.id], outcome: 'success',
          details: { format, rows: which, count: exported.length },
        });
        return { job: found, lines: exported };
      });
      const name = `reconciliation-${job.id}-${which}.${format}`;
      void reply.header('content-disposition', `attachment; filename="${name}"`).header('cache-control', 'no-store');
      if (format === 'json') return reply.type('application/json').send(JSON.stringify({ jobId: job.id, kind: job.kind, rows: lines }));
      return reply.type('text/csv; charset=utf-8').send(exportCsv(job, lines));
    },
  );
};

