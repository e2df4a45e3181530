// Applying a reviewed job. Accepted rows (decided accept/choose, or in the accepted band with no
// decision) link the row's member id to the patient: externalIds[source] = member id, which the
// engine then uses as a blocking key, so next month's export of the same member matches at once.
// Rows marked "new" become patients through the patients' own import rules (schema, normalisation,
// duplicate checks), as POST /patients would create them.
import type { Queryable } from '../../db/database.js';
import type { ErrorDetail } from '../../http/errors.js';
import { importPatients, type RowMapping, type RowSchemaCheck } from '../../patients/import.js';
import { compileFieldMapping, recogniseRecord, type CanonicalRecord } from '../engine/fields.js';
import { parseDateReadings } from '../engine/normalise.js';
import type { PracticeKeys } from '../../db/field-encryption.js';
import type { AppliedRow, RecordRow } from './store.js';

export interface ApplyInput {
  practiceId: string;
  /** The practice's PHI keys: created patients are sealed like any other (db/patient-phi.ts). */
  keys: PracticeKeys;
  source: string | null;
  fieldMapping: Record<string, string> | undefined;
  records: readonly RecordRow[];
  rows: ReadonlyMap<number, unknown>;
  checkSchema: RowSchemaCheck;
  fromWrite: RowMapping;
}

export interface ApplyOutcome {
  applied: AppliedRow[];
  linked: string[];
  created: string[];
}

/** The entity an accepted row links to, or null when the row is not accepted. */
export function acceptedEntity(record: RecordRow): string | null {
  if (record.decision === 'accept' || record.decision === 'choose') return record.decided_entity_id ?? record.entity_id;
  if (record.decision === null && record.band === 'accepted') return record.entity_id;
  return null;
}

/** The engine's date reading (YYYYMMDD or YYYY-MM-DD) as a calendar date. */
function isoDate(reading: string | undefined): string | null {
  const digits = reading?.replace(/-/g, '');
  return digits !== undefined && /^\d{8}$/.test(digits) ? `${digits.slice(0, 4)}-${digits.slice(4, 6)}-${digits.slice(6, 8)}` : null;
}

/** A "new patient" row as a PatientCreate body (v1 field names), from the row's recognised columns. */
export function patientFromRow(record: CanonicalRecord, source: string | null): Record<string, unknown> {
  let firstName = record.firstName;
  let lastName = record.lastName;
  if ((firstName === null || lastName === null) && record.fullName !== null) {
    const full = record.fullName.trim();
    const comma = full.indexOf(',');
    if (comma > 0) {
      lastName ??= full.slice(0, comma).trim();
      firstName ??= full.slice(comma + 1).trim();
    } else {
      const parts = full.split(/\s+/);
      lastName ??= parts.length > 1 ? parts.pop()! : null;
      firstName ??= parts.join(' ');
    }
  }
  const body: Record<string, unknown> = { firstName, lastName };
  const dob = isoDate(parseDateReadings(record.dateOfBirth)[0]);
  if (dob !== null) body.dateOfBirth = dob;
  if (record.emails[0] !== undefined) body.email = record.emails[0];
  if (record.phones[0] !== undefined) body.phoneNumber = record.phones[0];
  if (source !== null && record.memberIds[0] !== undefined) body.externalIds = { [source]: record.memberIds[0] };
  return body;
}

const messageOf = (errors: readonly ErrorDetail[]) =>
  errors.map((e) => `${e.field.replace(/^patients\.\d+\.?/, '') || 'row'}: ${e.message}`).join('; ').slice(0, 500);

export async function applyPatientDecisions(tx: Queryable, input: ApplyInput): Promise<ApplyOutcome> {
  const mapping = compileFieldMapping(input.fieldMapping);
  const applied: AppliedRow[] = [];
  const linked: string[] = [];
  const links: Array<{ recordIndex: number; patientId: string; memberId: string }> = [];
  const fresh: Array<{ recordIndex: number; body: Record<string, unknown> }> = [];

  for (const record of input.records) {
    if (record.applied_at !== null) continue;
    const raw = input.rows.get(record.record_index);
    const canonical = raw === undefined ? null : recogniseRecord(raw, mapping);
    const entity = acceptedEntity(record);
    if (entity !== null) {
      const memberId = canonical?.memberIds[0];
      if (input.source === null || memberId === undefined) {
        // Accepted, but nothing to store: the link stays in the job's results.
        applied.push({ recordIndex: record.record_index, entityId: entity, error: null });
      } else links.push({ recordIndex: record.record_index, patientId: entity, memberId });
    } else if (record.decision === 'new' && canonical !== null) {
      fresh.push({ recordIndex: record.record_index, body: patientFromRow(canonical, input.source) });
    } else if (record.decision === 'reject') {
      applied.push({ recordIndex: record.record_index, entityId: null, error: null });
    }
  }

  if (links.length > 0) {
    // A member id already held by another patient, or a patient holding another id of the source, is not overwritten.
    const { rows: taken } = await tx.query<{ external_id: string; patient_id: string }>(
      `SELECT external_id, patient_id::text FROM patient_external_ids WHERE practice_id = $1 AND source = $2 AND external_id = ANY($3::text[])`,
      [input.practiceId, input.source, links.map((l) => l.memberId)],
    );
    const holder = new Map(taken.map((t) => [t.external_id, t.patient_id]));
    const { rows: current } = await tx.query<{ id: string; member: string | null }>(
      `SELECT p.id::text, p.external_ids ->> $3 AS member FROM patients p WHERE p.practice_id = $1 AND p.id = ANY($2::uuid[])`,
      [input.practiceId, links.map((l) => l.patientId), input.source],
    );
    const memberOf = new Map(current.map((c) => [c.id, c.member]));
    const writes: typeof links = [];
    const claimed = new Map<string, string>();
    for (const link of links) {
      const other = holder.get(link.memberId) ?? claimed.get(link.memberId);
      const existing = memberOf.get(link.patientId);
      if (!memberOf.has(link.patientId)) applied.push({ recordIndex: link.recordIndex, entityId: null, error: 'the patient no longer exists' });
      else if (other !== undefined && other !== link.patientId) applied.push({ recordIndex: link.recordIndex, entityId: link.patientId, error: `this ${input.source} id already belongs to patient ${other}` });
      else if (existing !== null && existing !== undefined && existing !== link.memberId) applied.push({ recordIndex: link.recordIndex, entityId: link.patientId, error: `the patient already has another ${input.source} id` });
      else {
        claimed.set(link.memberId, link.patientId);
        if (existing !== link.memberId) writes.push(link);
        applied.push({ recordIndex: link.recordIndex, entityId: link.patientId, error: null });
        linked.push(link.patientId);
      }
    }
    if (writes.length > 0) {
      await tx.query(
        `UPDATE patients p SET external_ids = p.external_ids || jsonb_build_object($2::text, w.member_id), updated_at = now()
           FROM jsonb_to_recordset($3::jsonb) AS w(patient_id uuid, member_id text)
          WHERE p.practice_id = $1 AND p.id = w.patient_id`,
        [input.practiceId, input.source, JSON.stringify(writes.map((w) => ({ patient_id: w.patientId, member_id: w.memberId })))],
      );
    }
  }

  const created: string[] = [];
  if (fresh.length > 0) {
    const outcome = await importPatients(tx, input.keys, input.practiceId, fresh.map((f) => f.body), 'partial', input.checkSchema, input.fromWrite);
    for (const result of outcome.results) {
      const recordIndex = fresh[result.row]!.recordIndex;
      if (result.status === 'created') {
        created.push(result.id);
        applied.push({ recordIndex, entityId: result.id, error: null });
      } else if (result.status === 'failed') {
        applied.push({ recordIndex, entityId: result.existingPatientId ?? null, error: messageOf(result.errors) });
      }
    }
  }
  return { applied: applied.sort((a, b) => a.recordIndex - b.recordIndex), linked, created };
}
