// Reviewers' decisions as labelled pairs, and the practice's model fitted from them
// (docs/reconciliation.md, "Learning from decisions"; the engine side is engine/learning.ts).
// Labels are written when a PATIENTS job is applied: then the decisions are final, and the rows
// of the file are loaded anyway. Each label is the pair's comparison levels (no values) and
// whether it is the same person. Every apply that adds labels makes a new model version.
import type { Queryable } from '../../db/database.js';
import type { PracticeKeys } from '../../db/field-encryption.js';
import { countLabels, labelMetrics, PairLevels, type LabelCounts, type LabelledPair, type LabelMetrics, type LearnedEvidence } from '../engine/learning.js';
import { loadPracticePatientsById } from '../runs.js';
import type { Decision, RecordRow } from './store.js';

interface DecidedPair {
  recordIndex: number;
  entityId: string;
  match: boolean;
  decision: Decision;
}

/**
 * What a decision says about which pairs: accept and choose make the chosen pair a match (choose
 * also the engine's suggestion a non-match), reject and new make the suggestion a non-match.
 * Rows nobody decided (an accepted band left as it was) teach nothing.
 */
export function decidedPairs(record: RecordRow): DecidedPair[] {
  const base = { recordIndex: record.record_index };
  const suggestion = record.entity_id;
  switch (record.decision) {
    case 'accept': {
      const chosen = record.decided_entity_id ?? suggestion;
      return chosen === null ? [] : [{ ...base, entityId: chosen, match: true, decision: 'accept' }];
    }
    case 'choose': {
      const pairs: DecidedPair[] = [];
      if (record.decided_entity_id !== null) pairs.push({ ...base, entityId: record.decided_entity_id, match: true, decision: 'choose' });
      if (suggestion !== null && suggestion !== record.decided_entity_id) pairs.push({ ...base, entityId: suggestion, match: false, decision: 'choose' });
      return pairs;
    }
    case 'reject':
    case 'new':
      return suggestion === null ? [] : [{ ...base, entityId: suggestion, match: false, decision: record.decision }];
    default:
      return [];
  }
}

export interface LabelInput {
  practiceId: string;
  jobId: string;
  keys: PracticeKeys;
  fieldMapping: Record<string, string> | undefined;
  /** The job's rows before this apply: those already applied were labelled then. */
  records: readonly RecordRow[];
  rows: ReadonlyMap<number, unknown>;
}

/** Stores the labelled pairs of the job's decided, not yet applied rows; returns how many were new. */
export async function recordLabels(tx: Queryable, input: LabelInput): Promise<number> {
  const decided = input.records.filter((record) => record.applied_at === null).flatMap(decidedPairs);
  if (decided.length === 0) return 0;
  const patients = await loadPracticePatientsById(tx, input.keys, input.practiceId, [...new Set(decided.map((pair) => pair.entityId))]);
  const byId = new Map(patients.map((patient) => [patient.id, patient]));
  const levels = new PairLevels(input.fieldMapping);
  const labels = decided.flatMap((pair) => {
    const patient = byId.get(pair.entityId);
    const vector = patient === undefined ? null : levels.of(input.rows.get(pair.recordIndex), patient);
    return vector === null ? [] : [{ record_index: pair.recordIndex, entity_id: pair.entityId, levels: vector, is_match: pair.match, decision: pair.decision }];
  });
  if (labels.length === 0) return 0;
  const { rows } = await tx.query<{ n: number }>(
    `WITH inserted AS (
       INSERT INTO reconciliation_labels (practice_id, job_id, record_index, entity_id, levels, is_match, decision)
       SELECT $1, $2, l.record_index, l.entity_id, ARRAY(SELECT jsonb_array_elements_text(l.levels)::smallint), l.is_match, l.decision
         FROM jsonb_to_recordset($3::jsonb) AS l(record_index int, entity_id uuid, levels jsonb, is_match boolean, decision text)
       ON CONFLICT (job_id, record_index, entity_id) DO NOTHING
       RETURNING 1)
     SELECT count(*)::int AS n FROM inserted`,
    [input.practiceId, input.jobId, JSON.stringify(labels)],
  );
  return rows[0]!.n;
}

export interface PracticeModel {
  version: number;
  trainingSize: number;
  matchCount: number;
  nonMatchCount: number;
  counts: LabelCounts;
  metrics: LabelMetrics;
  jobId: string | null;
  createdAt: string;
}

interface ModelRow {
  version: number;
  training_size: number;
  match_count: number;
  non_match_count: number;
  counts: LabelCounts;
  metrics: LabelMetrics;
  job_id: string | null;
  created_at: Date | string;
}

/**
 * Fits a new version from every label of the practice: counts per field level, and leave-one-out
 * precision and recall at the applied job's threshold. Versions are numbered under a per-practice
 * lock, so two applies at once make two versions, not a clash.
 */
export async function fitPracticeModel(tx: Queryable, practiceId: string, jobId: string, threshold: number): Promise<PracticeModel> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('reconciliation_models:' || $1::text))`, [practiceId]);
  const { rows } = await tx.query<{ levels: number[]; is_match: boolean }>(
    `SELECT l.levels, l.is_match FROM reconciliation_labels l WHERE l.practice_id = $1 ORDER BY l.job_id, l.record_index, l.entity_id`,
    [practiceId],
  );
  const pairs: LabelledPair[] = rows.map((row) => ({ levels: row.levels.map(Number), match: row.is_match }));
  const counts = countLabels(pairs);
  const metrics = labelMetrics(pairs, threshold);
  const inserted = await tx.query<ModelRow>(
    `INSERT INTO reconciliation_models (practice_id, version, training_size, match_count, non_match_count, counts, metrics, job_id)
     SELECT $1, coalesce(max(m.version), 0) + 1, $2, $3, $4, $5::jsonb, $6::jsonb, $7
       FROM reconciliation_models m WHERE m.practice_id = $1
     RETURNING version, training_size, match_count, non_match_count, counts, metrics, job_id, created_at`,
    [practiceId, pairs.length, counts.matchCount, counts.nonMatchCount, JSON.stringify(counts), JSON.stringify(metrics), jobId],
  );
  return toModel(inserted.rows[0]!);
}

/** The practice's latest model version, or null when its reviewers have labelled nothing yet. */
export async function currentModel(tx: Queryable, practiceId: string): Promise<PracticeModel | null> {
  const { rows } = await tx.query<ModelRow>(
    `SELECT m.version, m.training_size, m.match_count, m.non_match_count, m.counts, m.metrics, m.job_id, m.created_at
       FROM reconciliation_models m WHERE m.practice_id = $1 ORDER BY m.version DESC LIMIT 1`,
    [practiceId],
  );
  return rows[0] === undefined ? null : toModel(rows[0]);
}

function toModel(row: ModelRow): PracticeModel {
  return {
    version: row.version, trainingSize: row.training_size, matchCount: row.match_count, nonMatchCount: row.non_match_count,
    counts: row.counts, metrics: row.metrics, jobId: row.job_id, createdAt: new Date(row.created_at).toISOString(),
  };
}

/** What the engine takes from a model (engine/learning.ts). */
export function learnedEvidence(model: PracticeModel): LearnedEvidence {
  return { version: model.version, counts: model.counts };
}
