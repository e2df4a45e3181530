// Runs reconciliation jobs in the background, one at a time per instance (any number of instances
// share the queue). A job is claimed under a lease (jobs/claim.ts: FOR UPDATE SKIP LOCKED, so no
// two runners hold it), the lease renewed while it runs, and every write fenced by the claim: a
// runner that was SIGKILLed leaves its job "running" with a lease that expires, and the next
// claim runs it again from the start. The engine runs on the worker pool behind the circuit
// breaker, like POST /ai/reconcile.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { recordAudit } from '../../audit/audit.js';
import type { Database, Queryable } from '../../db/database.js';
import { statementAsSystem, withPractice } from '../../db/scope.js';
import { claimStatement } from '../../jobs/claim.js';
import type { CircuitBreaker } from '../../resilience/circuit-breaker.js';
import { appointmentSales, type PracticeAppointment, type PracticePatient, type ReconcileResult, type ReconciliationMatch } from '../engine/engine.js';
import type { TransactionMatch } from '../engine/transactions.js';
import type { ReconcileRunner } from '../routes.js';
import { loadPracticeAppointments, loadPracticePatients } from '../runs.js';
import type { PhiKeyring } from '../../db/field-encryption.js';
import type { ReconcileJob } from '../worker.js';
import { EvidenceWriter, scoreEvidence } from '../review/evidence.js';
import { clearRecords, insertRecords, type Band, type NewRecord, type RecordDetail } from '../review/store.js';
import { currentModel, learnedEvidence } from '../review/learning.js';
import type { JobVault, PracticeJobVault } from './sealed.js';
import { failJob, findJob, finishJob, heartbeat, JOB_QUEUE, startAttempt, type JobRow } from './store.js';

interface Logger {
  error: (obj: object, msg: string) => void;
  info: (obj: object, msg: string) => void;
}

export interface JobRunnerOptions {
  db: Database;
  pool: ReconcileRunner;
  breaker: CircuitBreaker;
  vault: JobVault;
  /** Opens the practice's patients (db/field-encryption.ts). */
  keyring: PhiKeyring;
  log: Logger;
  leaseMs: number;
  pollMs: number;
  /** A job whose runs were interrupted this many times is failed instead of run again. */
  maxAttempts: number;
}

/** The algorithms that use the practice's learned model (FUZZY_MATCH has fixed weights). */
export const LEARNING_ALGORITHMS = ['ML_MODEL', 'HYBRID'] as const;
const learns = (job: JobRow) => job.kind === 'PATIENTS' && (LEARNING_ALGORITHMS as readonly string[]).includes(job.algorithm);

const isTransactionMatch = (match: ReconciliationMatch): match is TransactionMatch => match.entityType === 'SALE';

/**
 * What a job's entity ids name, for the audit log: patients, appointments (also the practice's
 * own sales of a TRANSACTIONS job), or, for sales from a file, nothing of the practice: the job.
 */
export function entityResourceType(job: JobRow): 'patient' | 'appointment' | 'reconciliation_job' {
  if (job.kind === 'PATIENTS') return 'patient';
  if (job.kind === 'APPOINTMENTS' || job.options.sales?.source === 'practice') return 'appointment';
  return 'reconciliation_job';
}

/**
 * The sales of a TRANSACTIONS job: the uploaded sales file, or the practice's completed
 * appointments, snapshotted (sealed) into the job when it runs so that review and export later
 * show the sales the job matched against, even if an appointment changes afterwards.
 */
export async function salesOf(tx: Queryable, job: JobRow, vault: PracticeJobVault): Promise<unknown[]> {
  if (job.options.sales?.source === 'file') return vault.loadRows(tx, job.id, 'practice_input');
  const sales = appointmentSales(await loadPracticeAppointments(tx, vault.keys, job.practice_id));
  await vault.deleteRows(tx, job.id, 'practice_input');
  await vault.storeRows(tx, job.practice_id, job.id, 'practice_input', sales);
  return sales;
}

export function bandOf(confidence: number, threshold: number, floor: number, hasMatch: boolean): Band {
  if (!hasMatch || confidence < floor) return 'unmatched';
  return confidence >= threshold ? 'accepted' : 'review';
}

/** The engine's result as one stored row per data row: band, choice, candidates with evidence. */
export function resultRecords(job: JobRow, rows: readonly unknown[], practice: PracticePatient[] | PracticeAppointment[], result: ReconcileResult, vault: PracticeJobVault): NewRecord[] {
  const byIndex = new Map(result.matches.map((match) => [match.recordIndex, match]));
  const patients = job.kind === 'PATIENTS' ? (practice as PracticePatient[]) : [];
  const evidence = new EvidenceWriter(patients, job.options.fieldMapping);
  const records: NewRecord[] = [];
  for (let index = 0; index < rows.length; index += 1) {
    const match = byIndex.get(index);
    const detail: RecordDetail = { candidates: [] };
    if (match !== undefined && isTransactionMatch(match)) {
      detail.candidates.push({ entityId: match.entityId, confidence: match.confidence, evidence: match.evidence, fieldScores: match.fieldScores });
      for (const other of match.candidates) detail.candidates.push({ entityId: other.entityId, confidence: other.confidence, evidence: other.evidence });
    } else if (match !== undefined) {
      const person = job.kind === 'PATIENTS' ? evidence.prepareRow(rows[index]) : null;
      const describe = (entityId: string, scores?: Record<string, number>) =>
        job.kind === 'PATIENTS' ? evidence.describe(person, entityId) : scoreEvidence(scores ?? {});
      detail.candidates.push({ entityId: match.entityId, confidence: match.confidence, evidence: describe(match.entityId, match.fieldScores), fieldScores: match.fieldScores });
      for (const other of match.candidates) detail.candidates.push({ entityId: other.entityId, confidence: other.confidence, evidence: describe(other.entityId) });
    }
    const confidence = match?.confidence ?? 0;
    const band = bandOf(confidence, job.confidence_threshold, job.review_floor, match !== undefined);
    records.push({
      recordIndex: index,
      band,
      confidence,
      entityId: band === 'unmatched' ? null : match!.entityId,
      detailSealed: vault.sealDetail(job.id, index, detail),
    });
  }
  return records;
}

export class ReconcileJobRunner {
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private running: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  private poll: NodeJS.Timeout | null = null;

  constructor(private readonly options: JobRunnerOptions) {}

  start(): void {
    this.poll = setInterval(() => this.kick(), this.options.pollMs);
    this.poll.unref();
    this.kick();
  }

  /** Look for work now (coalesced with a run in progress). */
  kick(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((error: unknown) => {
        if (!this.stopping) this.options.log.error({ err: error, component: 'reconcile-jobs' }, 'running reconciliation jobs failed');
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Stops claiming; a job in progress is abandoned to its lease (the next claim re-runs it). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.poll) clearInterval(this.poll);
  }

  private async drain(): Promise<void> {
    while (!this.stopping) {
      const { token, ...statement } = claimStatement(JOB_QUEUE, { owner: this.owner, limit: 1, leaseMs: this.options.leaseMs });
      const { rows } = await statementAsSystem<{ id: string; practice_id: string }>(this.options.db, statement);
      const claimed = rows[0];
      if (claimed === undefined) return;
      await this.runJob(claimed.id, claimed.practice_id, token);
    }
  }

  private async runJob(jobId: string, practiceId: string, token: string): Promise<void> {
    const { db, vault, leaseMs, maxAttempts } = this.options;
    const attempt = await withPractice(db, practiceId, (tx) => startAttempt(tx, jobId, token));
    if (attempt === null) return;
    if (attempt > maxAttempts) {
      await withPractice(db, practiceId, (tx) => failJob(tx, jobId, token, 'JOB_INTERRUPTED', `The job was interrupted ${maxAttempts} times and was not run again`));
      return;
    }
    const renew = setInterval(() => {
      void withPractice(db, practiceId, (tx) => heartbeat(tx, jobId, token, leaseMs)).catch(() => {});
    }, Math.max(50, Math.floor(leaseMs / 3)));
    renew.unref();
    try {
      const keys = await this.options.keyring.forPractice(practiceId);
      const jobVault = vault.for(keys);
      const loaded = await withPractice(db, practiceId, async (tx) => {
        const job = (await findJob(tx, practiceId, jobId))!;
        const rows = await jobVault.loadRows(tx, jobId, 'input');
        const practice = job.kind === 'PATIENTS' ? await loadPracticePatients(tx, keys, practiceId) : job.kind === 'APPOINTMENTS' ? await loadPracticeAppointments(tx, keys, practiceId) : [];
        const sales = job.kind === 'TRANSACTIONS' ? await salesOf(tx, job, jobVault) : [];
        const model = learns(job) ? await currentModel(tx, practiceId) : null;
        return { job, rows, practice, sales, model };
      });
      const { job, rows, practice, sales, model } = loaded;
      const candidates = job.kind === 'TRANSACTIONS' ? sales.length : practice.length;
      if (!(await withPractice(db, practiceId, (tx) => heartbeat(tx, jobId, token, leaseMs, { phase: 'scoring', candidates })))) return;
      // The engine returns everything at or above the floor; acceptAt tells HYBRID where the review band ends.
      const options = { algorithm: job.algorithm, confidence: Number(job.review_floor), acceptAt: Number(job.confidence_threshold), oneToOne: job.options.oneToOne, ...(job.options.fieldMapping ? { fieldMapping: job.options.fieldMapping } : {}), ...(model === null ? {} : { learned: learnedEvidence(model) }) };
      const engineJob: ReconcileJob = job.kind === 'PATIENTS'
        ? { target: 'PATIENTS', practice: practice as PracticePatient[], incoming: rows, options }
        : job.kind === 'APPOINTMENTS'
          ? { target: 'APPOINTMENTS', practice: practice as PracticeAppointment[], incoming: rows, options }
          : { target: 'TRANSACTIONS', sales, incoming: rows, options: { ...options, ...job.options.transactions } };
      this.options.pool.assertCapacity();
      const result = await this.options.breaker.execute(() => this.options.pool.run(engineJob));
      if (!(await withPractice(db, practiceId, (tx) => heartbeat(tx, jobId, token, leaseMs, { phase: 'storing' })))) return;
      const records = resultRecords(job, rows, practice, result, jobVault);
      const counts = { accepted: 0, review: 0, unmatched: 0 };
      for (const record of records) counts[record.band] += 1;
      await withPractice(db, practiceId, async (tx) => {
        await clearRecords(tx, jobId);
        await insertRecords(tx, practiceId, jobId, records);
        const finished = await finishJob(tx, jobId, token, { ...counts, pairsScored: result.stats.compared, candidates });
        if (!finished) throw new LostClaim();
        if (learns(job)) await recordModelVersion(tx, jobId, model?.version ?? 0);
        await recordAudit(tx, {
          practiceId, actorType: 'system', actorId: null, action: 'reconciliation.job.completed',
          resourceType: entityResourceType(job),
          resourceIds: entityResourceType(job) === 'reconciliation_job' ? [jobId] : [...new Set(records.flatMap((r) => (r.entityId === null ? [] : [r.entityId])))],
          outcome: 'success', details: { jobId, attempt, rows: rows.length, ...counts, ...(learns(job) ? { modelVersion: model?.version ?? 0 } : {}) },
        });
      });
    } catch (error) {
      if (error instanceof LostClaim) return; // cancelled or taken over meanwhile: nothing of this run is kept
      const name = (error as Error).name;
      const retryable = name === 'PoolSaturatedError' || name === 'CircuitOpenError' || name === 'PoolClosedError';
      if (retryable && !this.stopping) {
        // Load, not a fault of the job: give it back and try again later (the lease is released).
        await withPractice(db, practiceId, (tx) => tx.query(`UPDATE reconciliation_jobs SET claimed_by = NULL, lease_until = now() + interval '2 seconds', attempts = attempts - 1 WHERE id = $1 AND claimed_by = $2`, [jobId, token])).catch(() => {});
        return;
      }
      if (this.stopping) return;
      const code = 'RECONCILIATION_FAILED';
      const message = 'The reconciliation failed unexpectedly; the failure was logged';
      this.options.log.error({ component: 'reconcile-jobs', jobId, err: { name, message: (error as Error).message } }, 'reconciliation job failed');
      await withPractice(db, practiceId, (tx) => failJob(tx, jobId, token, code, message)).catch(() => {});
    } finally {
      clearInterval(renew);
    }
  }
}

/** Which learned model the job was scored with, kept in its options (shown as the job's modelVersion). */
async function recordModelVersion(tx: Queryable, jobId: string, version: number): Promise<void> {
  await tx.query(`UPDATE reconciliation_jobs SET options = options || jsonb_build_object('modelVersion', $2::int) WHERE id = $1`, [jobId, version]);
}

class LostClaim extends Error {
  override readonly name = 'LostClaim';
}
