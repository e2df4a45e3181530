// /v1/patients and /v2/patients (blueprint 1.3, 5.2): one set of routes, registered per version with
// that version's schema module (schema.v1.ts, schema.v2.ts), which maps its wire shapes to the one
// stored model; handlers never ask which version they serve. Every change works inside one practice-scoped transaction
// (withPractice) and writes its audit event in that same transaction, so a change of a patient is
// never without its record and a rolled-back change leaves no event claiming it. Reads (the list,
// one patient) are one round trip each (readInPractice) and answer only once their event is
// committed by the audit writer, so no patient data leaves without a durable record either.
import type { FastifyInstance, FastifyPluginOptions, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { recordAudit, requestOrigin, type AuditEvent } from '../audit/audit.js';
import { principalOf } from '../auth/guard.js';
import type { Database, Queryable } from '../db/database.js';
import type { PracticeKeys } from '../db/field-encryption.js';
import { isUuid, readInPractice, statementAsSystem, withPractice } from '../db/scope.js';
import { validationDetails } from '../http/error-handler.js';
import { AppError, conflict, notFound, validationError, type ErrorDetail } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { importPatients, type RowOutcome } from './import.js';
import type { EventOutbox } from '../events/outbox.js';
import { toPatientV2 } from './schema.v2.js';
import { normaliseWrite, type PatientFields, type PatientRecord, type PatientShapes } from './model.js';
import { PatientIdParams, PatientImportResultV1, PatientImportV1, PatientListQueryV1 } from './schema.v1.js';
import {
  deactivatePatient,
  findDuplicate,
  findPatient,
  findPatientStatement,
  patientFromRows,
  insertPatient,
  listPatientsResult,
  listPatientsStatement,
  listPatientsTotalStatement,
  searchCandidatesStatement,
  withCandidates,
  updatePatient,
  type Duplicate,
  type PatientListOptions,
  type PatientRow,
} from './store.js';

/** An import may carry 10,000 rows: about 5 MB of JSON, far above the default body limit. */
export const IMPORT_BODY_LIMIT_BYTES = 20 * 1024 * 1024;

type AuditBase = Omit<AuditEvent, 'action' | 'outcome'>;

/** Who, from where, for which practice: the part of every audit event the request decides. */
function auditBase(request: FastifyRequest): AuditBase & { practiceId: string } {
  const principal = principalOf(request);
  return {
    ...requestOrigin(request),
    practiceId: principal.practiceId,
    actorType: principal.kind,
    actorId: principal.id,
    resourceType: 'patient',
  };
}

function patientExists(duplicate: Duplicate): AppError {
  const field = duplicate.rule === 'email' ? 'email' : 'dateOfBirth';
  const what = duplicate.rule === 'email' ? 'this email' : 'this name and date of birth';
  return conflict('PATIENT_EXISTS', `Patient ${duplicate.id} already has ${what}`, [
    { field, message: `already used by patient ${duplicate.id}` },
  ]);
}

const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505';

/**
 * Runs a write; when a unique index refuses it (another request created the duplicate between our
 * check and our insert), answers 409 naming the patient that won, like the check would have.
 */
async function withDuplicateRace<T>(db: Database, keys: PracticeKeys, key: () => Parameters<typeof findDuplicate>[3], exceptId: string | null, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    // externalIds: a member id names one patient per practice and source (migration 014).
    if ((error as { constraint?: string }).constraint === 'patient_external_ids_pkey') {
      throw conflict('EXTERNAL_ID_EXISTS', 'One of these externalIds already belongs to another patient of the practice', [{ field: 'externalIds', message: 'already belongs to another patient' }]);
    }
    const duplicate = await withPractice(db, keys.practiceId, (tx) => findDuplicate(tx, keys, keys.practiceId, key(), exceptId));
    if (duplicate === null) throw error;
    throw patientExists(duplicate);
  }
}

/** The practice and actor of a patient's domain event, from the request's audit base. */
const eventOrigin = (audit: AuditBase & { practiceId: string }) => ({
  practiceId: audit.practiceId,
  actor: { type: audit.actorType, id: audit.actorId },
});

/** A change of a patient as a domain event; the record (v2 shape) only reaches includeData receivers. */
function patientEvent(
  audit: AuditBase & { practiceId: string },
  type: 'patient.created' | 'patient.updated' | 'patient.deactivated',
  patient: PatientRecord,
  changedFields: string[],
) {
  return { ...eventOrigin(audit), type, resourceId: patient.id, changedFields, resource: toPatientV2(patient) };
}

/** A malformed id can't name a patient: the same 404 as an unknown one, without a query. */
function assertPatientId(id: string): void {
  if (!isUuid(id)) throw notFound('Patient');
}

type WriteResult = { patient: PatientRecord } | { duplicate: Duplicate } | { missing: true };

/** Outcome of a write transaction that must commit its audit event even when the write is refused. */
function unwrap(result: WriteResult): PatientRecord {
  if ('duplicate' in result) throw patientExists(result.duplicate);
  if ('missing' in result) throw notFound('Patient');
  return result.patient;
}

/** An empty first page means nothing matched; an empty later page is past the end: ask. */
async function totalPastTheEnd(db: Database, practiceId: string, options: PatientListOptions): Promise<number> {
  if (options.page === 1 || options.q?.trim()) return 0;
  const { rows } = await readInPractice<{ total: number }>(db, practiceId, listPatientsTotalStatement(practiceId, options));
  return Number(rows[0]?.total ?? 0);
}

/**
 * One page of the practice's patients and its pagination, version-independent: each API version
 * maps the records to its own shape. The page is one read (one round trip); its audit event, with
 * the ids returned, is committed before the page is returned.
 */
export async function listPatientPage(db: Database, request: FastifyRequest, options: PatientListOptions) {
  const audit = auditBase(request);
  const { page, limit, status, q, sort } = options;
  const { records, total: pageTotal } = await request.server.keyring.withKeys(audit.practiceId, async (keys) => {
    let statement = listPatientsStatement(keys, audit.practiceId, options);
    if (q?.trim()) {
      const { rows: candidates } = await statementAsSystem<{ id: string }>(db, searchCandidatesStatement(keys, audit.practiceId, options));
      statement = withCandidates(statement, candidates.map((row) => row.id));
    }
    const { rows } = await readInPractice<PatientRow & { total: number }>(db, audit.practiceId, statement);
    return listPatientsResult(keys, options, rows);
  });
  const total = pageTotal ?? (await totalPastTheEnd(db, audit.practiceId, options));
  await request.server.auditWriter.record({
    ...audit,
    action: 'patient.list',
    outcome: 'success',
    resourceIds: records.map((record) => record.id),
    // The search text can be a name: only whether there was one is recorded.
    details: { page, limit, status: status ?? null, search: q !== undefined, sort },
  });
  return { records, pagination: { page, limit, total, totalPages: Math.ceil(total / limit) } };
}

/**
 * One patient of the practice, or a 404 (also for a malformed id or another practice's). Like the
 * list: one round trip, and the answer waits for its audit event's commit.
 */
export async function readPatient(db: Database, request: FastifyRequest, patientId: string): Promise<PatientRecord> {
  const audit = auditBase(request);
  assertPatientId(patientId);
  const patient = await request.server.keyring.withKeys(audit.practiceId, async (keys) =>
    patientFromRows(keys, (await readInPractice<PatientRow>(db, audit.practiceId, findPatientStatement(audit.practiceId, patientId))).rows),
  );
  // A miss is recorded too: probing for other practices' ids should show in the log.
  await request.server.auditWriter.record({ ...audit, action: 'patient.read', outcome: patient ? 'success' : 'failure', resourceIds: [patientId] });
  if (patient === null) throw notFound('Patient');
  return patient;
}

function requireValid(errors: ErrorDetail[]): void {
  if (errors.length > 0) throw validationError(errors);
}

export interface PatientRouteOptions extends FastifyPluginOptions {
  /** The version's schema module: patientShapesV1 under /v1, patientShapesV2 under /v2. */
  shapes: PatientShapes;
}

export async function patientRoutes(base: FastifyInstance, { shapes }: PatientRouteOptions): Promise<void> {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;

  app.get(
    '/patients',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['Patients'],
        summary: 'List patients',
        description: 'Filter by status, search by part of a name, email or phone number; exact totals.',
        querystring: PatientListQueryV1,
        response: { 200: shapes.PatientList, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const { records, pagination } = await listPatientPage(db, request, request.query);
      return { data: records.map(shapes.toPatient), pagination };
    },
  );

  app.post(
    '/patients',
    {
      config: { permission: 'write:patients' },
      schema: {
        tags: ['Patients'],
        summary: 'Create new patient',
        body: shapes.PatientCreate,
        response: { 201: shapes.Patient, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const audit = auditBase(request);
      const { fields, errors } = normaliseWrite(shapes.fromWrite(request.body));
      requireValid(errors);
      const complete = fields as Pick<PatientFields, 'firstName' | 'lastName'> & Partial<PatientFields>;
      const key = () => ({
        email: complete.email ?? null,
        firstName: complete.firstName,
        lastName: complete.lastName,
        dateOfBirth: complete.dateOfBirth ?? null,
      });
      const result = await app.keyring.withKeys(audit.practiceId, (keys) => withDuplicateRace(db, keys, key, null, () =>
        withPractice(db, audit.practiceId, async (tx): Promise<WriteResult> => {
          const duplicate = await findDuplicate(tx, keys, audit.practiceId, key());
          if (duplicate !== null) {
            await recordAudit(tx, { ...audit, action: 'patient.create', outcome: 'failure', resourceIds: [duplicate.id], details: { reason: 'PATIENT_EXISTS', rule: duplicate.rule } });
            return { duplicate };
          }
          const patient = await insertPatient(tx, keys, audit.practiceId, complete);
          await recordAudit(tx, { ...audit, action: 'patient.create', outcome: 'success', resourceIds: [patient.id], details: { fields: Object.keys(complete) } });
          await app.events.record(tx, patientEvent(audit, 'patient.created', patient, Object.keys(complete)));
          return { patient };
        }),
      ));
      const patient = unwrap(result);
      return reply.code(201).header('location', `${app.prefix}/patients/${patient.id}`).send(shapes.toPatient(patient));
    },
  );

  app.get(
    '/patients/:patientId',
    {
      config: { permission: 'read:patients' },
      schema: {
        tags: ['Patients'],
        summary: 'Get patient details',
        params: PatientIdParams,
        response: { 200: shapes.Patient, ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request) => shapes.toPatient(await readPatient(db, request, request.params.patientId)),
  );

  app.patch(
    '/patients/:patientId',
    {
      config: { permission: 'write:patients' },
      schema: {
        tags: ['Patients'],
        summary: 'Update a patient',
        description: 'Same validation and duplicate rules as create. Setting status ACTIVE or VIP reactivates a deleted patient.',
        params: PatientIdParams,
        body: shapes.PatientUpdate,
        response: { 200: shapes.Patient, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429) },
      },
    },
    async (request) => {
      const audit = auditBase(request);
      const { patientId } = request.params;
      assertPatientId(patientId);
      const { fields: changes, errors } = normaliseWrite(shapes.fromWrite(request.body));
      requireValid(errors);
      let merged: PatientRecord | null = null;
      const key = () => ({
        email: merged?.email ?? null,
        firstName: merged?.firstName ?? '',
        lastName: merged?.lastName ?? '',
        dateOfBirth: merged?.dateOfBirth ?? null,
      });
      const result = await app.keyring.withKeys(audit.practiceId, (keys) => withDuplicateRace(db, keys, key, patientId, () =>
        withPractice(db, audit.practiceId, (tx) => applyUpdate(tx, keys, app.events, audit, patientId, changes, (record) => (merged = record))),
      ));
      return shapes.toPatient(unwrap(result));
    },
  );

  app.delete(
    '/patients/:patientId',
    {
      config: { permission: 'delete:patients' },
      schema: {
        tags: ['Patients'],
        summary: 'Deactivate a patient',
        description: 'Sets status INACTIVE and deletedAt. The record is kept (retention) and never erased.',
        params: PatientIdParams,
        response: { 200: shapes.Patient, ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request) => {
      const audit = auditBase(request);
      const { patientId } = request.params;
      assertPatientId(patientId);
      const patient = await app.keyring.withKeys(audit.practiceId, (keys) => withPractice(db, audit.practiceId, async (tx) => {
        const updated = await deactivatePatient(tx, keys, audit.practiceId, patientId);
        await recordAudit(tx, { ...audit, action: 'patient.deactivate', outcome: updated ? 'success' : 'failure', resourceIds: [patientId] });
        if (updated) await app.events.record(tx, patientEvent(audit, 'patient.deactivated', updated, ['status', 'deletedAt']));
        return updated;
      }));
      if (patient === null) throw notFound('Patient');
      return shapes.toPatient(patient);
    },
  );

  app.post(
    '/patients/import',
    {
      bodyLimit: IMPORT_BODY_LIMIT_BYTES,
      // 10,000 rows take a few seconds; a slow disk must not turn a committed import into a 504.
      config: { permission: 'write:patients', requestTimeoutMs: 120_000 },
      schema: {
        tags: ['Patients'],
        summary: 'Import patients in bulk',
        description:
          'Up to 10,000 PatientCreate rows. mode "atomic" (default) creates all or none; "partial" creates the valid rows. Results per row, in row order.',
        body: PatientImportV1,
        response: { 200: PatientImportResultV1, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
      },
    },
    async (request) => {
      const audit = auditBase(request);
      const { mode, patients } = request.body;
      const validateRow = request.compileValidationSchema(shapes.PatientCreate, 'body');
      const checkSchema = (row: unknown, index: number): ErrorDetail[] =>
        validateRow(row)
          ? []
          : validationDetails((validateRow.errors ?? []) as Parameters<typeof validationDetails>[0], 'body').map((detail) => ({
              field: detail.field === '(body)' ? `patients.${index}` : `patients.${index}.${detail.field}`,
              message: detail.message,
            }));
      const keys = await app.keyring.forPractice(audit.practiceId);
      const outcome = await withPractice(db, audit.practiceId, async (tx) => {
        const result = await importPatients(tx, keys, audit.practiceId, patients, mode, checkSchema, shapes.fromWrite);
        if (!result.committed) throw new ImportRejected(result.results);
        const created = result.results.filter((r) => r.status === 'created').map((r) => (r as { id: string }).id);
        await recordAudit(tx, { ...audit, action: 'patient.import', outcome: 'success', resourceIds: created, details: { mode, rows: patients.length, created: created.length } });
        await app.events.record(
          tx,
          created.map((id) => ({ ...eventOrigin(audit), type: 'patient.created' as const, resourceId: id, refs: { import: true } })),
        );
        return result;
      }).catch(async (error: unknown) => {
        if (!(error instanceof ImportRejected)) throw error;
        // The rows were rolled back; the refused attempt is still recorded.
        await withPractice(db, audit.practiceId, (tx) =>
          recordAudit(tx, { ...audit, action: 'patient.import', outcome: 'failure', details: { mode, rows: patients.length, failed: countFailed(error.results) } }),
        );
        throw atomicImportError(error.results);
      });
      const created = outcome.results.filter((r) => r.status === 'created').length;
      return { mode, total: patients.length, created, failed: patients.length - created, results: outcome.results };
    },
  );
}

/** Thrown inside the import transaction to roll it back while keeping the per-row results. */
class ImportRejected extends Error {
  constructor(readonly results: RowOutcome[]) {
    super('atomic import rejected');
  }
}

const countFailed = (results: RowOutcome[]) => results.filter((r) => r.status === 'failed').length;

/** 400 when any row is invalid, else 409 when rows only duplicate existing patients; details per row. */
function atomicImportError(results: RowOutcome[]): AppError {
  const failed = results.filter((r): r is Extract<RowOutcome, { status: 'failed' }> => r.status === 'failed');
  const details = failed.flatMap((r) => r.errors);
  const onlyDuplicates = failed.every((r) => r.existingPatientId !== undefined);
  const summary = `${failed.length} of ${results.length} rows were refused; nothing was imported (atomic mode)`;
  return onlyDuplicates ? conflict('PATIENT_EXISTS', summary, details) : validationError(details, summary);
}

/** PATCH inside its transaction: load, merge, check duplicates against the merged record, write. */
async function applyUpdate(
  tx: Queryable,
  keys: PracticeKeys,
  events: EventOutbox,
  audit: AuditBase & { practiceId: string },
  patientId: string,
  changes: Partial<PatientFields>,
  remember: (merged: PatientRecord) => void,
): Promise<WriteResult> {
  const current = await findPatient(tx, keys, audit.practiceId, patientId);
  if (current === null) {
    await recordAudit(tx, { ...audit, action: 'patient.update', outcome: 'failure', resourceIds: [patientId] });
    return { missing: true };
  }
  const merged: PatientRecord = { ...current, ...changes };
  remember(merged);
  const staysLive = changes.status === 'ACTIVE' || changes.status === 'VIP' || current.deletedAt === null;
  const duplicate = staysLive ? await findDuplicate(tx, keys, audit.practiceId, merged, patientId) : null;
  if (duplicate !== null) {
    await recordAudit(tx, { ...audit, action: 'patient.update', outcome: 'failure', resourceIds: [patientId, duplicate.id], details: { reason: 'PATIENT_EXISTS', rule: duplicate.rule } });
    return { duplicate };
  }
  const patient = (await updatePatient(tx, keys, audit.practiceId, patientId, changes))!;
  await recordAudit(tx, { ...audit, action: 'patient.update', outcome: 'success', resourceIds: [patientId], details: { fields: Object.keys(changes) } });
  await events.record(tx, patientEvent(audit, 'patient.updated', patient, Object.keys(changes)));
  return { patient };
}
