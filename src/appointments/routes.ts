// /v1/appointments (read:appointments / write:appointments). Booking never double-books: the
// exclusion constraints of 004_scheduling.sql decide every race, on one instance or many; the
// pre-check in front of them only exists so the 409 can name the appointment in the way.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { recordAudit, requestOrigin, type AuditEvent } from '../audit/audit.js';
import { principalOf, type Principal } from '../auth/guard.js';
import { changeBy } from '../events/outbox.js';
import { readInPractice, withPractice } from '../db/scope.js';
import { AppError, notFound, validationError, type ErrorDetail } from '../http/errors.js';
import { completeIdempotentRequest, IdempotencyKeyHeaders } from '../http/idempotency.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid, pagination } from '../http/pagination.js';
import {
  appointmentListResult,
  findAppointmentStatement,
  findConflict,
  listAppointmentsStatement,
  lockAppointment,
  patientProblem,
  practitionerProblem,
  serviceFacts,
  takeBookingTurn,
  toAppointment,
  APPOINTMENT_COLUMNS,
  type AppointmentListRow,
  type AppointmentRow,
  type AppointmentTextRow,
  type Conflict,
  type Problem,
  type SlotRequest,
} from './repository.js';
import {
  allowedTransitions,
  canTransition,
  isReschedulable,
  normaliseRoom,
  parseInstant,
  resolveEnd,
  timeProblem,
  type AppointmentStatus,
} from './rules.js';
import {
  Appointment,
  AppointmentCreate,
  AppointmentIdParams,
  AppointmentList,
  AppointmentListQuery,
  AppointmentUpdate,
} from './schema.js';

// Losing a race for a slot surfaces two ways: the exclusion constraint fires (23P01), or two
// inserts each wait on the other's uncommitted overlapping row and PostgreSQL aborts one of them
// as a deadlock (40P01). Either way the other booking holds the slot: the answer is the conflict.
// Bookings take turns (takeBookingTurn), so neither should happen between two requests of this
// API; both stay handled for writers that don't take turns.
const LOST_SLOT_RACE = new Set(['23P01', '40P01']);

const isLostSlotRace = (error: unknown) => LOST_SLOT_RACE.has((error as { code?: string } | null)?.code ?? '');

const WHAT: Record<Conflict['field'], string> = {
  practitionerId: 'The practitioner',
  patientId: 'The patient',
  room: 'The room',
};

export function slotConflict(conflict: Conflict): AppError {
  const when = `${conflict.start.toISOString()} to ${conflict.end.toISOString()}`;
  return new AppError(
    'TIME_SLOT_CONFLICT',
    409,
    `${WHAT[conflict.field]} already has appointment ${conflict.id} overlapping this time (${when})`,
    [
      { field: conflict.field, message: `already booked from ${when}` },
      { field: 'conflictingAppointmentId', message: conflict.id },
    ],
  );
}

/** The appointment won a race the pre-check couldn't see: find it now that it has committed. */
async function conflictAfterRace(db: FastifyInstance['db'], practiceId: string, slot: SlotRequest): Promise<AppError> {
  const conflict = await withPractice(db, practiceId, (tx) => findConflict(tx, practiceId, slot));
  if (conflict !== null) return slotConflict(conflict);
  // Cancelled again in the meantime: still a conflict at the moment we tried.
  return new AppError('TIME_SLOT_CONFLICT', 409, 'This time slot was taken by another booking; try again', []);
}

function unprocessable(problems: Problem[]): AppError {
  const first = problems[0]!;
  return new AppError(
    first.code,
    422,
    problems.length === 1 ? `${first.field} ${first.message}` : 'The appointment cannot be booked as requested',
    problems.map(({ field, message }) => ({ field, message })),
  );
}

function instantOrThrow(value: string, field: string): Date {
  const parsed = parseInstant(value);
  if (parsed === null) {
    throw validationError([{ field, message: 'must be an ISO 8601 date-time with an offset, e.g. 2027-03-14T10:00:00-04:00' }]);
  }
  return parsed;
}

/** An appointment event: a change's goes into its transaction (recordAudit), a read's to app.auditWriter. */
function auditEvent(
  request: FastifyRequest,
  principal: Principal,
  action: string,
  ids: string[],
  details: Record<string, unknown> = {},
  outcome: 'success' | 'failure' = 'success',
): AuditEvent {
  return {
    ...requestOrigin(request),
    practiceId: principal.practiceId,
    actorType: principal.kind,
    actorId: principal.id,
    action,
    resourceType: 'appointment',
    resourceIds: ids,
    outcome,
    details,
  };
}

/** A change of an appointment as a domain event: ids and field names, the appointment itself only for includeData receivers. */
function appointmentEvent(
  principal: Principal,
  type: 'appointment.booked' | 'appointment.rescheduled' | 'appointment.status_changed' | 'appointment.cancelled' | 'appointment.updated',
  row: AppointmentRow,
  changedFields: string[],
  refs: Record<string, string | null> = {},
) {
  return {
    ...changeBy(principal),
    type,
    resourceId: row.id,
    changedFields,
    refs: { patientId: row.patient_id, practitionerId: row.practitioner_id, serviceId: row.service_id, status: row.status, ...refs },
    resource: toAppointment(row),
  };
}

export async function appointmentRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;

  app.post(
    '/appointments',
    {
      config: { permission: 'write:appointments', idempotent: 'transactional' },
      schema: {
        tags: ['Appointments'],
        summary: 'Create appointment',
        operationId: 'createAppointment',
        description:
          '201 with the appointment and a Location header. 400 for malformed input; 422 when well formed but ' +
          'impossible (end before start, unknown or inactive patient, inactive service, a practitioner who is not one); ' +
          '409 TIME_SLOT_CONFLICT naming the overlapping appointment. Send Idempotency-Key to retry safely.',
        headers: IdempotencyKeyHeaders,
        body: AppointmentCreate,
        response: { 201: Appointment, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const start = instantOrThrow(body.startTime, 'startTime');
      const givenEnd = body.endTime === undefined ? null : instantOrThrow(body.endTime, 'endTime');
      const room = normaliseRoom(body.room);
      let slot: SlotRequest | null = null;
      try {
        const row = await withPractice(db, principal.practiceId, async (tx) => {
          await takeBookingTurn(tx, principal.practiceId);
          const problems: Problem[] = [];
          const patient = await patientProblem(tx, body.patientId);
          if (patient) problems.push(patient);
          const practitioner = await practitionerProblem(tx, body.practitionerId);
          if (practitioner) problems.push(practitioner);
          const service = await serviceFacts(tx, body.serviceId);
          if ('code' in service) problems.push(service);
          const durationMinutes = 'code' in service ? 60 : service.durationMinutes;
          const end = resolveEnd(start, givenEnd, durationMinutes);
          const time = timeProblem({ start, end }, new Date());
          if (time) problems.unshift(time);
          if (problems.length > 0 || 'code' in service) throw unprocessable(problems);

          slot = { start, end, practitionerId: body.practitionerId, patientId: body.patientId, room, excludeId: null };
          const conflict = await findConflict(tx, principal.practiceId, slot);
          if (conflict !== null) throw slotConflict(conflict);
          const { rows } = await tx.query<AppointmentRow>(
            `INSERT INTO appointments
               (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, room, notes, price_cents, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING ${APPOINTMENT_COLUMNS}`,
            [
              principal.practiceId,
              body.patientId,
              body.practitionerId,
              body.serviceId,
              start.toISOString(),
              end.toISOString(),
              room,
              body.notes ?? null,
              service.priceCents,
              `${principal.kind}:${principal.id}`,
            ],
          );
          const created = rows[0]!;
          await recordAudit(tx, auditEvent(request, principal, 'appointment.create', [created.id], {
            patientId: created.patient_id,
            practitionerId: created.practitioner_id,
          }));
          await app.events.record(tx, appointmentEvent(principal, 'appointment.booked', created, []));
          // The stored response commits with the appointment: a retry can never book twice.
          await completeIdempotentRequest(tx, request, 201, toAppointment(created), {
            location: `${app.prefix}/appointments/${created.id}`,
          });
          return created;
        });
        reply.code(201).header('location', `${app.prefix}/appointments/${row.id}`);
        return toAppointment(row);
      } catch (error) {
        if (isLostSlotRace(error) && slot !== null) throw await conflictAfterRace(db, principal.practiceId, slot);
        throw error;
      }
    },
  );

  app.get(
    '/appointments',
    {
      config: { permission: 'read:appointments' },
      schema: {
        tags: ['Appointments'],
        summary: 'List appointments',
        operationId: 'listAppointments',
        description:
          "startDate and endDate are calendar days in the practice's time zone, both inclusive; an appointment " +
          'belongs to the day it starts. Sorted by start time.',
        querystring: AppointmentListQuery,
        response: { 200: AppointmentList, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const query = request.query;
      if (query.startDate !== undefined && query.endDate !== undefined && query.endDate < query.startDate) {
        throw validationError([{ field: 'endDate', message: 'must not be before startDate' }]);
      }
      const statement = listAppointmentsStatement({
        practiceId: principal.practiceId,
        startDate: query.startDate ?? null,
        endDate: query.endDate ?? null,
        status: query.status ?? null,
        practitionerId: query.practitionerId ?? null,
        patientId: query.patientId ?? null,
        limit: query.limit,
        offset: (query.page - 1) * query.limit,
      });
      const { rows, total } = appointmentListResult((await readInPractice<AppointmentListRow>(db, principal.practiceId, statement)).rows);
      // Committed (group-committed with other reads) before the page leaves.
      await app.auditWriter.record(auditEvent(request, principal, 'appointment.list', rows.map((row) => row.id), {
        filters: {
          startDate: query.startDate,
          endDate: query.endDate,
          status: query.status,
          practitionerId: query.practitionerId,
          patientId: query.patientId,
        },
        page: query.page,
        total,
      }));
      return {
        data: rows.map(toAppointment),
        pagination: pagination(query.page, query.limit, total),
      };
    },
  );

  app.get(
    '/appointments/:appointmentId',
    {
      config: { permission: 'read:appointments' },
      schema: {
        tags: ['Appointments'],
        summary: 'Get an appointment',
        operationId: 'getAppointment',
        description: '404 for an unknown id, a malformed id, and another practice\'s appointment alike. The read is audited.',
        params: AppointmentIdParams,
        response: { 200: Appointment, ...errorResponses(401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { appointmentId } = request.params;
      if (!isUuid(appointmentId)) throw notFound('Appointment');
      const { rows } = await readInPractice<AppointmentTextRow>(db, principal.practiceId, findAppointmentStatement(principal.practiceId, appointmentId));
      const row = rows[0];
      // A miss is recorded too: probing for other practices' ids should show in the log.
      await app.auditWriter.record(auditEvent(request, principal, 'appointment.read', [appointmentId], {}, row === undefined ? 'failure' : 'success'));
      if (row === undefined) throw notFound('Appointment');
      return toAppointment(row);
    },
  );

  app.patch(
    '/appointments/:appointmentId',
    {
      config: { permission: 'write:appointments' },
      schema: {
        tags: ['Appointments'],
        summary: 'Reschedule an appointment or change its status',
        operationId: 'updateAppointment',
        description:
          'Either a status change (SCHEDULED -> CONFIRMED -> COMPLETED; SCHEDULED/CONFIRMED -> CANCELLED with ' +
          'cancellationReason; SCHEDULED/CONFIRMED -> NO_SHOW once it has started) or a reschedule (startTime, ' +
          'endTime, practitionerId, room), checked for conflicts again; notes may go with either. Any other status ' +
          'change is 422 INVALID_TRANSITION. Moving a CONFIRMED appointment to another time or practitioner sets it ' +
          'back to SCHEDULED: the patient confirmed the old slot, not the new one.',
        params: AppointmentIdParams,
        body: AppointmentUpdate,
        response: { 200: Appointment, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { appointmentId } = request.params;
      if (!isUuid(appointmentId)) throw notFound('Appointment');
      const body = request.body;
      const rescheduling =
        body.startTime !== undefined || body.endTime !== undefined || body.practitionerId !== undefined || body.room !== undefined;
      const input: ErrorDetail[] = [];
      if (body.status !== undefined && rescheduling) {
        input.push({ field: 'status', message: 'change the status and reschedule in separate requests' });
      }
      if (body.status === 'CANCELLED' && (body.cancellationReason ?? '').trim() === '') {
        input.push({ field: 'cancellationReason', message: 'is required when cancelling' });
      }
      if (body.cancellationReason !== undefined && body.status !== 'CANCELLED') {
        input.push({ field: 'cancellationReason', message: 'only goes with status CANCELLED' });
      }
      const newStart = body.startTime === undefined ? null : instantOrThrow(body.startTime, 'startTime');
      const newEnd = body.endTime === undefined ? null : instantOrThrow(body.endTime, 'endTime');
      if (input.length > 0) throw validationError(input);

      let slot: SlotRequest | null = null;
      try {
        const row = await withPractice(db, principal.practiceId, async (tx) => {
          if (rescheduling) await takeBookingTurn(tx, principal.practiceId);
          const current = await lockAppointment(tx, appointmentId);
          if (current === undefined) throw notFound('Appointment');
          const from = current.status;
          const notes = body.notes === undefined ? current.notes : body.notes;

          if (body.status !== undefined) {
            const to: AppointmentStatus = body.status;
            if (!canTransition(from, to)) {
              const allowed = allowedTransitions(from);
              throw new AppError('INVALID_TRANSITION', 422, `An appointment cannot go from ${from} to ${to}`, [
                { field: 'status', message: allowed.length > 0 ? `from ${from} only ${allowed.join(', ')}` : `${from} is final` },
              ]);
            }
            if (to === 'NO_SHOW' && new Date(current.start_time).getTime() > Date.now()) {
              throw new AppError('INVALID_TRANSITION', 422, 'An appointment can be marked NO_SHOW only once it has started', [
                { field: 'status', message: 'the appointment has not started yet' },
              ]);
            }
            const { rows } = await tx.query<AppointmentRow>(
              `UPDATE appointments SET status = $2, notes = $3,
                      cancellation_reason = CASE WHEN $2 = 'CANCELLED' THEN $4 ELSE cancellation_reason END,
                      cancelled_at = CASE WHEN $2 = 'CANCELLED' THEN now() ELSE cancelled_at END,
                      updated_at = now()
                WHERE id = $1 RETURNING ${APPOINTMENT_COLUMNS}`,
              [appointmentId, to, notes, body.cancellationReason?.trim() ?? null],
            );
            const updated = rows[0]!;
            await recordAudit(tx, auditEvent(request, principal, to === 'CANCELLED' ? 'appointment.cancel' : 'appointment.status', [updated.id], {
              from,
              to,
              notesChanged: body.notes !== undefined,
            }));
            const changed = to === 'CANCELLED' ? ['status', 'cancellationReason'] : ['status'];
            if (body.notes !== undefined) changed.push('notes');
            await app.events.record(
              tx,
              appointmentEvent(principal, to === 'CANCELLED' ? 'appointment.cancelled' : 'appointment.status_changed', updated, changed, { from, to }),
            );
            return updated;
          }

          if (rescheduling) {
            if (!isReschedulable(from)) {
              throw new AppError('INVALID_TRANSITION', 422, `A ${from} appointment cannot be rescheduled`, [
                { field: 'startTime', message: `${from} is final; book a new appointment instead` },
              ]);
            }
            const oldStart = new Date(current.start_time);
            const oldEnd = new Date(current.end_time);
            const start = newStart ?? oldStart;
            // A new start alone keeps the appointment's length; an explicit end wins.
            const end = newEnd ?? (newStart !== null ? new Date(start.getTime() + (oldEnd.getTime() - oldStart.getTime())) : oldEnd);
            const practitionerId = body.practitionerId ?? current.practitioner_id;
            const room = body.room === undefined ? current.room : normaliseRoom(body.room);
            const problems: Problem[] = [];
            const time = timeProblem({ start, end }, new Date());
            if (time) problems.push(time);
            if (body.practitionerId !== undefined && body.practitionerId !== current.practitioner_id) {
              const practitioner = await practitionerProblem(tx, body.practitionerId);
              if (practitioner) problems.push(practitioner);
            }
            if (problems.length > 0) throw unprocessable(problems);
            slot = { start, end, practitionerId, patientId: current.patient_id, room, excludeId: current.id };
            const conflict = await findConflict(tx, principal.practiceId, slot);
            if (conflict !== null) throw slotConflict(conflict);
            const moved =
              start.getTime() !== oldStart.getTime() || end.getTime() !== oldEnd.getTime() || practitionerId !== current.practitioner_id;
            const status: AppointmentStatus = moved && from === 'CONFIRMED' ? 'SCHEDULED' : from;
            const { rows } = await tx.query<AppointmentRow>(
              `UPDATE appointments SET start_time = $2, end_time = $3, practitioner_id = $4, room = $5, notes = $6,
                      status = $7, updated_at = now()
                WHERE id = $1 RETURNING ${APPOINTMENT_COLUMNS}`,
              [appointmentId, start.toISOString(), end.toISOString(), practitionerId, room, notes, status],
            );
            const updated = rows[0]!;
            await recordAudit(tx, auditEvent(request, principal, 'appointment.reschedule', [updated.id], {
              from: { startTime: oldStart.toISOString(), endTime: oldEnd.toISOString(), practitionerId: current.practitioner_id, room: current.room },
              to: { startTime: start.toISOString(), endTime: end.toISOString(), practitionerId, room },
              status: { from, to: status },
              notesChanged: body.notes !== undefined,
            }));
            const changed = [
              ...(start.getTime() !== oldStart.getTime() ? ['startTime'] : []),
              ...(end.getTime() !== oldEnd.getTime() ? ['endTime'] : []),
              ...(practitionerId !== current.practitioner_id ? ['practitionerId'] : []),
              ...(room !== current.room ? ['room'] : []),
              ...(status !== from ? ['status'] : []),
              ...(body.notes !== undefined ? ['notes'] : []),
            ];
            await app.events.record(tx, appointmentEvent(principal, 'appointment.rescheduled', updated, changed));
            return updated;
          }

          // Notes only.
          const { rows } = await tx.query<AppointmentRow>(
            `UPDATE appointments SET notes = $2, updated_at = now() WHERE id = $1 RETURNING ${APPOINTMENT_COLUMNS}`,
            [appointmentId, notes],
          );
          const updated = rows[0]!;
          await recordAudit(tx, auditEvent(request, principal, 'appointment.update', [updated.id], { fields: ['notes'] }));
          await app.events.record(tx, appointmentEvent(principal, 'appointment.updated', updated, ['notes']));
          return updated;
        });
        return toAppointment(row);
      } catch (error) {
        if (isLostSlotRace(error) && slot !== null) throw await conflictAfterRace(db, principal.practiceId, slot);
        throw error;
      }
    },
  );
}
