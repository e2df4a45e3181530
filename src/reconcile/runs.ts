// Database side of reconciliation: loading the practice's records for the engine, and storing
// and reading runs. Every function takes a practice-scoped transaction (withPractice), so row-level
// security is on; the explicit practice_id filters are the first line, RLS the second.
import type { Queryable } from '../db/database.js';
import { isUuid } from '../db/scope.js';
import type { PracticeKeys } from '../db/field-encryption.js';
import { openPatient } from '../db/patient-phi.js';
import type { Algorithm, PracticeAppointment, PracticePatient, ReconciliationMatch } from './engine/engine.js';

export type ReconcileTarget = 'PATIENTS' | 'APPOINTMENTS';

interface PatientRow {
  id: string;
  phi: string;
  phi_key: number;
  gender: string | null;
  external_ids: Record<string, string> | null;
}

const PATIENT_COLUMNS = `p.id, p.phi, p.phi_key, p.gender, p.external_ids`;

// The patients' PHI is sealed: opened here through the one decoding path (db/patient-phi.ts).
function toPracticePatient(keys: PracticeKeys, row: PatientRow): PracticePatient {
  const phi = openPatient(keys, row);
  return {
    id: row.id,
    firstName: phi.firstName,
    lastName: phi.lastName,
    dateOfBirth: phi.dateOfBirth,
    email: phi.email,
    phoneNumber: phi.phoneNumber,
    gender: row.gender,
    address: phi.address ?? null,
    externalIds: row.external_ids ?? null,
  };
}

/** Every patient of the practice that is not deleted (ACTIVE, VIP and INACTIVE alike). */
export async function loadPracticePatients(tx: Queryable, keys: PracticeKeys, practiceId: string): Promise<PracticePatient[]> {
  const { rows } = await tx.query<PatientRow>(
    `SELECT ${PATIENT_COLUMNS}
       FROM patients p
      WHERE p.practice_id = $1 AND p.deleted_at IS NULL
      ORDER BY p.id`,
    [practiceId],
  );
  return rows.map((row) => toPracticePatient(keys, row));
}

/** The named patients of the practice (deleted ones too: a decision made before a delete still teaches). */
export async function loadPracticePatientsById(tx: Queryable, keys: PracticeKeys, practiceId: string, ids: readonly string[]): Promise<PracticePatient[]> {
  if (ids.length === 0) return [];
  const { rows } = await tx.query<PatientRow>(
    `SELECT ${PATIENT_COLUMNS} FROM patients p WHERE p.practice_id = $1 AND p.id = ANY($2::uuid[]) ORDER BY p.id`,
    [practiceId, ids.filter(isUuid)],
  );
  return rows.map((row) => toPracticePatient(keys, row));
}

interface AppointmentRow extends PatientRow {
  appointment_id: string;
  start_time: Date | string;
  status: string;
  price_cents: number | null;
  service_name: string;
  service_category: string | null;
}

/**
 * The practice's COMPLETED appointments with their patient and service: what a loyalty
 * redemption or a point-of-sale line can refer to. price_cents is what the appointment was
 * charged (not the list price), the amount a POS export would show.
 */
export async function loadPracticeAppointments(tx: Queryable, keys: PracticeKeys, practiceId: string): Promise<PracticeAppointment[]> {
  const { rows } = await tx.query<AppointmentRow>(
    `SELECT a.id AS appointment_id, a.start_time, a.status, a.price_cents,
            s.name AS service_name, s.category AS service_category,
            ${PATIENT_COLUMNS}
       FROM appointments a
       JOIN patients p ON p.id = a.patient_id AND p.practice_id = a.practice_id
       JOIN services s ON s.id = a.service_id AND s.practice_id = a.practice_id
      WHERE a.practice_id = $1 AND a.status = 'COMPLETED' AND p.deleted_at IS NULL
      ORDER BY a.start_time, a.id`,
    [practiceId],
  );
  return rows.map((row) => ({
    id: row.appointment_id,
    patient: toPracticePatient(keys, row),
    startTime: new Date(row.start_time).toISOString(),
    serviceName: row.service_name,
    serviceCategory: row.service_category,
    priceCents: row.price_cents,
    status: row.status,
  }));
}

export interface NewRun {
  practiceId: string;
  createdBy: { type: 'user' | 'api_key'; id: string };
  algorithm: Algorithm;
  target: ReconcileTarget;
  confidenceThreshold: number;
  oneToOne: boolean;
  recordCount: number;
  candidateCount: number;
  matches: ReconciliationMatch[];
  unmatched: number[];
  meanConfidence: number;
  processingMs: number;
}

export interface StoredRun {
  id: string;
  createdAt: string;
  createdBy: { type: 'user' | 'api_key'; id: string };
  algorithm: Algorithm;
  target: ReconcileTarget;
  confidenceThreshold: number;
  oneToOne: boolean;
  counts: { records: number; matched: number; unmatched: number; candidates: number };
  confidence: number;
  processingTime: number;
  matches: ReconciliationMatch[];
  unmatched: number[];
}

export async function insertRun(tx: Queryable, run: NewRun): Promise<{ id: string; createdAt: string }> {
  const { rows } = await tx.query<{ id: string; created_at: Date | string }>(
    `INSERT INTO reconciliation_runs
       (practice_id, created_by_type, created_by_id, algorithm, target, confidence_threshold, one_to_one,
        record_count, matched_count, unmatched_count, candidate_count, mean_confidence, processing_ms,
        matches, unmatched)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15::jsonb)
     RETURNING id, created_at`,
    [
      run.practiceId,
      run.createdBy.type,
      run.createdBy.id,
      run.algorithm,
      run.target,
      run.confidenceThreshold,
      run.oneToOne,
      run.recordCount,
      run.matches.length,
      run.unmatched.length,
      run.candidateCount,
      run.meanConfidence,
      run.processingMs,
      JSON.stringify(run.matches),
      JSON.stringify(run.unmatched),
    ],
  );
  const row = rows[0]!;
  return { id: row.id, createdAt: new Date(row.created_at).toISOString() };
}

interface RunRow {
  id: string;
  created_at: Date | string;
  created_by_type: 'user' | 'api_key';
  created_by_id: string;
  algorithm: Algorithm;
  target: ReconcileTarget;
  confidence_threshold: number;
  one_to_one: boolean;
  record_count: number;
  matched_count: number;
  unmatched_count: number;
  candidate_count: number;
  mean_confidence: number;
  processing_ms: number;
  matches: ReconciliationMatch[] | string;
  unmatched: number[] | string;
}

const parseJson = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);


/** The run, or null when it doesn't exist, belongs to another practice, or the id is malformed. */
export async function findRun(tx: Queryable, practiceId: string, runId: string): Promise<StoredRun | null> {
  if (!isUuid(runId)) return null;
  const { rows } = await tx.query<RunRow>(
    `SELECT id, created_at, created_by_type, created_by_id, algorithm, target, confidence_threshold, one_to_one,
            record_count, matched_count, unmatched_count, candidate_count, mean_confidence, processing_ms,
            matches, unmatched
       FROM reconciliation_runs
      WHERE practice_id = $1 AND id = $2`,
    [practiceId, runId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return {
    id: row.id,
    createdAt: new Date(row.created_at).toISOString(),
    createdBy: { type: row.created_by_type, id: row.created_by_id },
    algorithm: row.algorithm,
    target: row.target,
    confidenceThreshold: Number(row.confidence_threshold),
    oneToOne: row.one_to_one,
    counts: {
      records: row.record_count,
      matched: row.matched_count,
      unmatched: row.unmatched_count,
      candidates: row.candidate_count,
    },
    confidence: Number(row.mean_confidence),
    processingTime: Number(row.processing_ms),
    matches: parseJson(row.matches),
    unmatched: parseJson(row.unmatched),
  };
}
