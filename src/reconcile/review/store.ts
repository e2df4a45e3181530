// SQL of a job's result rows: one per data row of the file, with its band, the chosen practice
// record, the sealed candidates and evidence, and the reviewer's decision.
import type { Queryable } from '../../db/database.js';

export const BANDS = ['accepted', 'review', 'unmatched'] as const;
export type Band = (typeof BANDS)[number];
export const DECISIONS = ['accept', 'reject', 'choose', 'new'] as const;
export type Decision = (typeof DECISIONS)[number];

export interface CandidateDetail {
  entityId: string;
  confidence: number;
  evidence: string[];
  fieldScores?: Record<string, number>;
}

/** What is sealed per row: every candidate, best first (the engine's choice is the first when there is one). */
export interface RecordDetail {
  candidates: CandidateDetail[];
}

export interface NewRecord {
  recordIndex: number;
  band: Band;
  confidence: number;
  entityId: string | null;
  detailSealed: string;
}

export interface RecordRow {
  record_index: number;
  band: Band;
  confidence: number;
  entity_id: string | null;
  detail_sealed: string;
  decision: Decision | null;
  decided_entity_id: string | null;
  decided_by_type: 'user' | 'api_key' | null;
  decided_by_id: string | null;
  decided_at: Date | string | null;
  applied_at: Date | string | null;
  applied_entity_id: string | null;
  apply_error: string | null;
}

const RECORD_COLUMNS = `r.record_index, r.band, r.confidence, r.entity_id, r.detail_sealed, r.decision, r.decided_entity_id,
  r.decided_by_type, r.decided_by_id, r.decided_at, r.applied_at, r.applied_entity_id, r.apply_error`;

/** Rows per INSERT: one JSON parameter each. */
const INSERT_BATCH = 2000;

/** Replaces the job's result rows (a re-run after a crash starts from nothing). */
export async function clearRecords(tx: Queryable, jobId: string): Promise<void> {
  await tx.query(`DELETE FROM reconciliation_job_records WHERE job_id = $1`, [jobId]);
}

export async function insertRecords(tx: Queryable, practiceId: string, jobId: string, records: readonly NewRecord[]): Promise<void> {
  for (let start = 0; start < records.length; start += INSERT_BATCH) {
    const batch = records.slice(start, start + INSERT_BATCH).map((r) => ({
      record_index: r.recordIndex, band: r.band, confidence: r.confidence, entity_id: r.entityId, detail_sealed: r.detailSealed,
    }));
    await tx.query(
      `INSERT INTO reconciliation_job_records (job_id, practice_id, record_index, band, confidence, entity_id, detail_sealed)
       SELECT $1, $2, r.record_index, r.band, r.confidence, r.entity_id, r.detail_sealed
         FROM jsonb_to_recordset($3::jsonb) AS r(record_index int, band text, confidence float8, entity_id text, detail_sealed text)`,
      [jobId, practiceId, JSON.stringify(batch)],
    );
  }
}

export interface RecordFilter {
  band?: Band | undefined;
  /** Only rows without a decision (the review queue). */
  undecided?: boolean | undefined;
}

export async function listRecords(tx: Queryable, jobId: string, filter: RecordFilter, page: number, limit: number): Promise<{ records: RecordRow[]; total: number }> {
  const params = [jobId, filter.band ?? null, filter.undecided ?? false];
  const where = `r.job_id = $1 AND ($2::text IS NULL OR r.band = $2) AND (NOT $3::boolean OR r.decision IS NULL)`;
  const { rows } = await tx.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM reconciliation_job_records r WHERE ${where} ORDER BY r.record_index LIMIT $4 OFFSET $5`,
    [...params, limit, (page - 1) * limit],
  );
  const counted = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM reconciliation_job_records r WHERE ${where}`, params);
  return { records: rows, total: counted.rows[0]!.n };
}

/** Every row of the job (the export, apply), in file order. */
export async function allRecords(tx: Queryable, jobId: string): Promise<RecordRow[]> {
  const { rows } = await tx.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM reconciliation_job_records r WHERE r.job_id = $1 ORDER BY r.record_index`, [jobId]);
  return rows;
}

export async function findRecords(tx: Queryable, jobId: string, indexes: readonly number[]): Promise<RecordRow[]> {
  const { rows } = await tx.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM reconciliation_job_records r WHERE r.job_id = $1 AND r.record_index = ANY($2::int[]) ORDER BY r.record_index FOR UPDATE`,
    [jobId, indexes],
  );
  return rows;
}

export interface DecisionWrite {
  recordIndex: number;
  decision: Decision;
  entityId: string | null;
}

/** Stores decisions with who and when; rows already applied keep theirs. Returns the indexes changed. */
export async function writeDecisions(tx: Queryable, jobId: string, by: { type: 'user' | 'api_key'; id: string }, decisions: readonly DecisionWrite[]): Promise<number[]> {
  const { rows } = await tx.query<{ record_index: number }>(
    `UPDATE reconciliation_job_records r SET decision = d.decision, decided_entity_id = d.entity_id,
            decided_by_type = $2, decided_by_id = $3, decided_at = now()
       FROM jsonb_to_recordset($4::jsonb) AS d(record_index int, decision text, entity_id text)
      WHERE r.job_id = $1 AND r.record_index = d.record_index AND r.applied_at IS NULL
      RETURNING r.record_index`,
    [jobId, by.type, by.id, JSON.stringify(decisions.map((d) => ({ record_index: d.recordIndex, decision: d.decision, entity_id: d.entityId })))],
  );
  return rows.map((row) => row.record_index).sort((a, b) => a - b);
}

/** Decides every undecided, unapplied row of a band at once. */
export async function decideBand(tx: Queryable, jobId: string, by: { type: 'user' | 'api_key'; id: string }, band: Band, decision: 'accept' | 'reject' | 'new'): Promise<number[]> {
  const { rows } = await tx.query<{ record_index: number }>(
    `UPDATE reconciliation_job_records r SET decision = $5,
            decided_entity_id = CASE WHEN $5 = 'accept' THEN r.entity_id END,
            decided_by_type = $2, decided_by_id = $3, decided_at = now()
      WHERE r.job_id = $1 AND r.band = $4 AND r.decision IS NULL AND r.applied_at IS NULL
        AND ($5 <> 'accept' OR r.entity_id IS NOT NULL)
      RETURNING r.record_index`,
    [jobId, by.type, by.id, band, decision],
  );
  return rows.map((row) => row.record_index).sort((a, b) => a - b);
}

export interface AppliedRow {
  recordIndex: number;
  entityId: string | null;
  error: string | null;
}

export async function markApplied(tx: Queryable, jobId: string, applied: readonly AppliedRow[]): Promise<void> {
  if (applied.length === 0) return;
  await tx.query(
    `UPDATE reconciliation_job_records r SET applied_at = now(), applied_entity_id = a.entity_id, apply_error = a.error
       FROM jsonb_to_recordset($2::jsonb) AS a(record_index int, entity_id text, error text)
      WHERE r.job_id = $1 AND r.record_index = a.record_index`,
    [jobId, JSON.stringify(applied.map((a) => ({ record_index: a.recordIndex, entity_id: a.entityId, error: a.error })))],
  );
}
