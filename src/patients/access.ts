// A patient's privacy rights (docs/hipaa.md): the accounting of disclosures and access (HIPAA
// 164.528), GET /v1/patients/{id}/access-log, and the right-of-access copy (164.524),
// GET /v1/patients/{id}/export. Both need read:audit (ADMIN, MANAGER: the privacy office), both are
// a 404 for a patient the practice doesn't have, and both are audited like any PHI read.
//
// The log is every audit event naming the patient in its resource ids: reads, list pages that
// returned it, changes, imports, reconciliation runs that matched it, webhook disclosures, exports,
// break-glass requests. Appointments' own SQL is read here directly (a feature may not import a
// sibling's code); the export shows the stored columns, not the appointments API's shape.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { auditActor, principalOf } from '../auth/guard.js';
import type { Queryable } from '../db/database.js';
import { isUuid, withPractice } from '../db/scope.js';
import type { PracticeKeys } from '../db/field-encryption.js';
import { notFound } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { PageQuery, paginated, pagination } from '../http/pagination.js';
import { PatientIdParams } from './schema.v1.js';
import type { PatientRouteOptions } from './routes.js';
import { findPatient } from './store.js';

const NullableString = Type.Union([Type.String(), Type.Null()]);

const AccessLogEntry = Type.Object(
  {
    id: Type.Integer({ description: 'The audit event id' }),
    occurredAt: Type.String({ format: 'date-time' }),
    action: Type.String({ description: 'What was done, e.g. patient.read, patient.list, patient.update, reconciliation.run, webhook.disclosure' }),
    outcome: Type.String(),
    actor: Type.Object({
      type: Type.String({ description: 'user, api_key or system' }),
      id: NullableString,
      email: Type.Union([Type.String(), Type.Null()], { description: 'For a user' }),
      role: Type.Union([Type.String(), Type.Null()], { description: 'The user’s current role (events do not record the role at the time)' }),
      apiKeyName: Type.Union([Type.String(), Type.Null()], { description: 'For an API key: the integration it was issued to' }),
    }),
    ip: NullableString,
    userAgent: NullableString,
    requestId: NullableString,
    emergencyAccessGrantId: Type.Union([Type.String(), Type.Null()], { description: 'Set when the request was allowed by a break-glass grant' }),
    details: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'PatientAccessLogEntry' },
);

interface AccessRow {
  id: string;
  occurred_at: Date;
  action: string;
  outcome: string;
  actor_type: string;
  actor_id: string | null;
  email: string | null;
  role: string | null;
  api_key_name: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  grant_id: string | null;
  details: Record<string, unknown>;
}

const ExportAppointment = Type.Object({
  id: Type.String({ format: 'uuid' }),
  startTime: Type.String({ format: 'date-time' }),
  endTime: Type.String({ format: 'date-time' }),
  status: Type.String(),
  serviceId: Type.String({ format: 'uuid' }),
  serviceName: NullableString,
  practitionerId: Type.String({ format: 'uuid' }),
  room: NullableString,
  notes: NullableString,
  priceCents: Type.Integer(),
  cancellationReason: NullableString,
  cancelledAt: NullableString,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

/** The export in a version's shape: the patient as that version shows it, the rest the same. */
const patientExport = (patient: TSchema) => Type.Object({
  exportedAt: Type.String({ format: 'date-time' }),
  patient,
  appointments: Type.Array(ExportAppointment),
  reconciliationMatches: Type.Array(
    Type.Object({
      runId: Type.String({ format: 'uuid' }),
      runAt: Type.String({ format: 'date-time' }),
      algorithm: Type.String(),
      target: Type.String(),
      match: Type.Record(Type.String(), Type.Unknown(), { description: 'The match as the run stored it (the patient or one of its appointments)' }),
    }),
  ),
});

/** The patient, or a 404 (malformed id, unknown, another practice's) with the miss audited. */
async function patientOr404(tx: Queryable, keys: PracticeKeys, request: FastifyRequest, patientId: string, action: string) {
  const principal = principalOf(request);
  const patient = isUuid(patientId) ? await findPatient(tx, keys, principal.practiceId, patientId) : null;
  if (patient === null) {
    await recordAudit(tx, { ...requestOrigin(request), ...auditActor(principal), action, resourceType: 'patient', resourceIds: isUuid(patientId) ? [patientId] : [], outcome: 'failure' });
  }
  return patient;
}

export async function patientAccessRoutes(base: FastifyInstance, { shapes }: PatientRouteOptions): Promise<void> {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;
  app.addSchema(AccessLogEntry);

  app.get(
    '/patients/:patientId/access-log',
    {
      config: { permission: 'read:audit' },
      schema: {
        tags: ['Patients'],
        summary: 'Accounting of disclosures: every access and change of one patient, newest first',
        description: 'From the audit log: who (user and role, or API key), when, what, from where, with which request, and whether break-glass allowed it.',
        params: PatientIdParams,
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: paginated(Type.Ref('PatientAccessLogEntry')), ...errorResponses(400, 401, 403, 404, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { patientId } = request.params;
      const { page, limit } = request.query as { page: number; limit: number };
      // Keys first: on PGlite a key read inside the transaction would wait for it.
      const keys = await app.keyring.forPractice(principal.practiceId);
      const result = await withPractice(db, principal.practiceId, async (tx) => {
        if ((await patientOr404(tx, keys, request, patientId, 'patient.access_log')) === null) return null;
        // @> is what the GIN index on resource_ids serves (= ANY would read every event).
        const { rows } = await tx.query<AccessRow>(
          `SELECT e.id::text AS id, e.occurred_at, e.action, e.outcome, e.actor_type, e.actor_id, u.email, u.role,
                  k.name AS api_key_name, e.ip, e.user_agent, e.request_id, glass.grant_id, e.details
             FROM audit_events e
             LEFT JOIN users u ON e.actor_type = 'user' AND u.id::text = e.actor_id
             LEFT JOIN api_keys k ON e.actor_type = 'api_key' AND k.id::text = e.actor_id
             LEFT JOIN LATERAL (
                   SELECT b.resource_ids[1] AS grant_id FROM audit_events b
                    WHERE b.action = 'emergency_access.used' AND b.request_id = e.request_id LIMIT 1) glass ON true
            WHERE e.practice_id = $1 AND e.resource_ids @> ARRAY[$2]::text[]
            ORDER BY e.occurred_at DESC, e.id DESC LIMIT $3 OFFSET $4`,
          [principal.practiceId, patientId, limit, (page - 1) * limit],
        );
        const { rows: count } = await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM audit_events e WHERE e.practice_id = $1 AND e.resource_ids @> ARRAY[$2]::text[]',
          [principal.practiceId, patientId],
        );
        await recordAudit(tx, { ...requestOrigin(request), ...auditActor(principal), action: 'patient.access_log', resourceType: 'patient', resourceIds: [patientId], outcome: 'success', details: { returned: rows.length } });
        return { rows, total: count[0]!.n };
      });
      if (result === null) throw notFound('Patient');
      return {
        data: result.rows.map((row) => ({
          id: Number(row.id),
          occurredAt: row.occurred_at.toISOString(),
          action: row.action,
          outcome: row.outcome,
          actor: { type: row.actor_type, id: row.actor_id, email: row.email, role: row.role, apiKeyName: row.api_key_name },
          ip: row.ip,
          userAgent: row.user_agent,
          requestId: row.request_id,
          emergencyAccessGrantId: row.grant_id,
          details: row.details,
        })),
        pagination: pagination(page, limit, result.total),
      };
    },
  );

  app.get(
    '/patients/:patientId/export',
    {
      config: { permission: 'read:audit' },
      schema: {
        tags: ['Patients'],
        summary: 'Everything stored about one patient (right of access)',
        description: 'The patient, their appointments and the reconciliation matches that name them or their appointments, as JSON. Audited as patient.export.',
        params: PatientIdParams,
        response: { 200: patientExport(shapes.Patient), ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { patientId } = request.params;
      const keys = await app.keyring.forPractice(principal.practiceId);
      const result = await withPractice(db, principal.practiceId, async (tx) => {
        const patient = await patientOr404(tx, keys, request, patientId, 'patient.export');
        if (patient === null) return null;
        const { rows: appointments } = await tx.query<{
          id: string; start_time: Date; end_time: Date; status: string; service_id: string; service_name: string | null;
          practitioner_id: string; room: string | null; notes: string | null; price_cents: number;
          cancellation_reason: string | null; cancelled_at: Date | null; created_at: Date; updated_at: Date;
        }>(
          `SELECT a.id, a.start_time, a.end_time, a.status, a.service_id, s.name AS service_name, a.practitioner_id, a.room,
                  a.notes, a.price_cents, a.cancellation_reason, a.cancelled_at, a.created_at, a.updated_at
             FROM appointments a LEFT JOIN services s ON s.id = a.service_id
            WHERE a.practice_id = $1 AND a.patient_id = $2
            ORDER BY a.start_time, a.id`,
          [principal.practiceId, patientId],
        );
        const entityIds = [patientId, ...appointments.map((a) => a.id)];
        const { rows: matches } = await tx.query<{ run_id: string; created_at: Date; algorithm: string; target: string; match: Record<string, unknown> }>(
          `SELECT r.id AS run_id, r.created_at, r.algorithm, r.target, m.value AS match
             FROM reconciliation_runs r CROSS JOIN LATERAL jsonb_array_elements(r.matches) AS m(value)
            WHERE r.practice_id = $1 AND m.value->>'entityId' = ANY ($2::text[])
            ORDER BY r.created_at, r.id`,
          [principal.practiceId, entityIds],
        );
        await recordAudit(tx, {
          ...requestOrigin(request),
          ...auditActor(principal),
          action: 'patient.export',
          resourceType: 'patient',
          resourceIds: entityIds,
          outcome: 'success',
          details: { appointments: appointments.length, reconciliationMatches: matches.length },
        });
        return {
          exportedAt: new Date().toISOString(),
          patient: shapes.toPatient(patient),
          appointments: appointments.map((a) => ({
            id: a.id,
            startTime: a.start_time.toISOString(),
            endTime: a.end_time.toISOString(),
            status: a.status,
            serviceId: a.service_id,
            serviceName: a.service_name,
            practitionerId: a.practitioner_id,
            room: a.room,
            notes: a.notes,
            priceCents: a.price_cents,
            cancellationReason: a.cancellation_reason,
            cancelledAt: a.cancelled_at?.toISOString() ?? null,
            createdAt: a.created_at.toISOString(),
            updatedAt: a.updated_at.toISOString(),
          })),
          reconciliationMatches: matches.map((m) => ({ runId: m.run_id, runAt: m.created_at.toISOString(), algorithm: m.algorithm, target: m.target, match: m.match })),
        };
      });
      if (result === null) throw notFound('Patient');
      return reply.header('content-disposition', `attachment; filename="patient-${patientId}.json"`).send(result);
    },
  );
}
