// SQL of reconciliation jobs: creating, reading, listing and cancelling them (in the practice's
// scope), and the queue the runner claims from (jobs/claim.ts). Every write a runner makes is
// fenced by its claim token: a runner whose lease ran out can no longer change the job.
import type { Queryable } from '../../db/database.js';
import { isUuid } from '../../db/scope.js';
import type { ClaimQueue } from '../../jobs/claim.js';
import type { Algorithm } from '../engine/engine.js';
import type { ColumnReading } from '../input/columns.js';
import type { BadRow } from '../input/csv.js';

export const JOB_KINDS = ['PATIENTS', 'APPOINTMENTS', 'TRANSACTIONS'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export type JobPhase = 'queued' | 'loading' | 'scoring' | 'storing' | 'done';

/** TRANSACTIONS: where the sales come from, and the matcher's settings. */
export interface SalesInput {
  /** file: the uploaded `sales` file (sealed as the job's practice_input); practice: the practice's completed appointments, read when the job runs. */
  source: 'file' | 'practice';
  fileName: string | null;
  rows: number;
  bytes: number;
  columns: ColumnReading[];
}

export interface TransactionSettings {
  maxLagDays: number;
  maxRedemptionsPerSale: number;
  amountToleranceCents: number;
  amountTolerancePercent: number;
}

export interface JobOptions {
  oneToOne: boolean;
  sales?: SalesInput;
  transactions?: TransactionSettings;
  fieldMapping?: Record<string, string>;
  format: 'csv' | 'json';
  encoding: string;
  delimiter: string | null;
  badRowCount: number;
  /** Set when a PATIENTS job with ML_MODEL or HYBRID runs: the learned model version it used (0: none). */
  modelVersion?: number;
}

export interface JobRow {
  id: string;
  practice_id: string;
  kind: JobKind;
  algorithm: Algorithm;
  confidence_threshold: number;
  review_floor: number;
  source: string | null;
  options: JobOptions;
  status: JobStatus;
  phase: JobPhase;
  phase_started_at: Date | string | null;
  records_written: number;
  columns: ColumnReading[];
  bad_rows: BadRow[];
  file_name: string | null;
  file_bytes: string | number;
  rows_read: number;
  input_chunks: number;
  candidates: number;
  pairs_scored: string | number;
  accepted_count: number;
  review_count: number;
  unmatched_count: number;
  attempts: number;
  error_code: string | null;
  error_message: string | null;
  created_by_type: 'user' | 'api_key';
  created_by_id: string;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  applied_at: Date | string | null;
  now: Date | string;
}

const JOB_COLUMNS = `j.id, j.practice_id, j.kind, j.algorithm, j.confidence_threshold, j.review_floor, j.source, j.options,
  j.status, j.phase, j.phase_started_at, j.records_written, j.columns, j.bad_rows, j.file_name, j.file_bytes, j.rows_read,
  j.input_chunks, j.candidates, j.pairs_scored, j.accepted_count, j.review_count, j.unmatched_count, j.attempts,
  j.error_code, j.error_message, j.created_by_type, j.created_by_id, j.created_at, j.started_at, j.finished_at,
  j.applied_at, now() AS now`;

export interface NewJob {
  practiceId: string;
  kind: JobKind;
  algorithm: Algorithm;
  confidence: number;
  reviewFloor: number;
  source: string | null;
  options: JobOptions;
  columns: ColumnReading[];
  badRows: BadRow[];
  fileName: string | null;
  fileBytes: number;
  rowsRead: number;
  createdBy: { type: 'user' | 'api_key'; id: string };
}

export async function insertJob(tx: Queryable, job: NewJob): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    `INSERT INTO reconciliation_jobs (practice_id, kind, algorithm, confidence_threshold, review_floor, source, options,
       columns, bad_rows, file_name, file_bytes, rows_read, created_by_type, created_by_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14)
     RETURNING id`,
    [
      job.practiceId, job.kind, job.algorithm, job.confidence, job.reviewFloor, job.source, JSON.stringify(job.options),
      JSON.stringify(job.columns), JSON.stringify(job.badRows), job.fileName, job.fileBytes, job.rowsRead,
      job.createdBy.type, job.createdBy.id,
    ],
  );
  return rows[0]!.id;
}

export async function setInputChunks(tx: Queryable, jobId: string, chunks: number): Promise<void> {
  await tx.query(`UPDATE reconciliation_jobs SET input_chunks = $2 WHERE id = $1`, [jobId, chunks]);
}

export async function findJob(tx: Queryable, practiceId: string, jobId: string, forUpdate = false): Promise<JobRow | null> {
  if (!isUuid(jobId)) return null;
  const { rows } = await tx.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM reconciliation_jobs j WHERE j.practice_id = $1 AND j.id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [practiceId, jobId],
  );
  return rows[0] ?? null;
}

export async function listJobs(tx: Queryable, practiceId: string, page: number, limit: number, status?: JobStatus): Promise<{ jobs: JobRow[]; total: number }> {
  const { rows } = await tx.query<JobRow & { total: number }>(
    `SELECT ${JOB_COLUMNS}, count(*) OVER ()::int AS total
       FROM reconciliation_jobs j
      WHERE j.practice_id = $1 AND ($4::text IS NULL OR j.status = $4)
      ORDER BY j.created_at DESC, j.id DESC
      LIMIT $2 OFFSET $3`,
    [practiceId, limit, (page - 1) * limit, status ?? null],
  );
  let total = rows[0]?.total ?? 0;
  if (rows.length === 0 && page > 1) {
    const counted = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM reconciliation_jobs j WHERE j.practice_id = $1 AND ($2::text IS NULL OR j.status = $2)`,
      [practiceId, status ?? null],
    );
    total = counted.rows[0]!.n;
  }
  return { jobs: rows, total };
}

/** Jobs of the practice waiting or running: the practice's share of the queue. */
export async function activeJobCount(tx: Queryable, practiceId: string): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM reconciliation_jobs WHERE practice_id = $1 AND status IN ('queued', 'running')`,
    [practiceId],
  );
  return rows[0]!.n;
}

/** Cancels a queued or running job; the uploaded rows are deleted with it. False when it had already ended. */
export async function cancelJob(tx: Queryable, practiceId: string, jobId: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE reconciliation_jobs SET status = 'cancelled', phase = 'done', finished_at = now(), claimed_by = NULL, lease_until = NULL
      WHERE practice_id = $1 AND id = $2 AND status IN ('queued', 'running')`,
    [practiceId, jobId],
  );
  if (rowCount > 0) await tx.query(`DELETE FROM reconciliation_job_chunks WHERE job_id = $1`, [jobId]);
  return rowCount > 0;
}

/** What the runner claims: waiting jobs, and running ones whose instance stopped renewing the lease. */
export const JOB_QUEUE: ClaimQueue = {
  table: 'reconciliation_jobs',
  ready: `t.status IN ('queued', 'running')`,
  order: 't.created_at, t.id',
};

/** After a claim: the job starts (again), fenced by the claim's token. Returns the attempt number, or null if lost. */
export async function startAttempt(tx: Queryable, jobId: string, token: string): Promise<number | null> {
  const { rows } = await tx.query<{ attempts: number }>(
    `UPDATE reconciliation_jobs SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()),
            phase = 'loading', phase_started_at = now(), records_written = 0
      WHERE id = $1 AND claimed_by = $2 AND status IN ('queued', 'running')
      RETURNING attempts`,
    [jobId, token],
  );
  return rows[0]?.attempts ?? null;
}

/** Renews the lease and records the phase; false when the job was cancelled or claimed by another runner. */
export async function heartbeat(tx: Queryable, jobId: string, token: string, leaseMs: number, progress: { phase?: JobPhase; candidates?: number; recordsWritten?: number } = {}): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE reconciliation_jobs SET lease_until = now() + $3 * interval '1 millisecond',
            phase = coalesce($4, phase),
            phase_started_at = CASE WHEN $4::text IS NOT NULL AND $4 <> phase THEN now() ELSE phase_started_at END,
            candidates = coalesce($5, candidates), records_written = coalesce($6, records_written)
      WHERE id = $1 AND claimed_by = $2 AND status = 'running'`,
    [jobId, token, leaseMs, progress.phase ?? null, progress.candidates ?? null, progress.recordsWritten ?? null],
  );
  return rowCount > 0;
}

export interface JobOutcome {
  accepted: number;
  review: number;
  unmatched: number;
  pairsScored: number;
  candidates: number;
}

export async function finishJob(tx: Queryable, jobId: string, token: string, outcome: JobOutcome): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE reconciliation_jobs SET status = 'succeeded', phase = 'done', finished_at = now(), claimed_by = NULL, lease_until = NULL,
            accepted_count = $3, review_count = $4, unmatched_count = $5, pairs_scored = $6, candidates = $7
      WHERE id = $1 AND claimed_by = $2 AND status = 'running'`,
    [jobId, token, outcome.accepted, outcome.review, outcome.unmatched, outcome.pairsScored, outcome.candidates],
  );
  return rowCount > 0;
}

export async function failJob(tx: Queryable, jobId: string, token: string, code: string, message: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE reconciliation_jobs SET status = 'failed', phase = 'done', finished_at = now(), claimed_by = NULL, lease_until = NULL,
            error_code = $3, error_message = $4
      WHERE id = $1 AND claimed_by = $2 AND status IN ('queued', 'running')`,
    [jobId, token, code, message.slice(0, 500)],
  );
  return rowCount > 0;
}
