// The SQL of appointments. Every function takes a practice-scoped transaction (withPractice), so
// row-level security already limits it to the caller's practice; the explicit filters are there
// for the planner and for readability.
import type { Queryable } from '../db/database.js';
import type { ErrorDetail } from '../http/errors.js';
import { MAX_APPOINTMENT_MS, type AppointmentStatus } from './rules.js';
import type { Appointment } from './schema.js';

export interface AppointmentRow {
  id: string;
  patient_id: string;
  practitioner_id: string;
  service_id: string;
  start_time: Date;
  end_time: Date;
  room: string | null;
  notes: string | null;
  status: AppointmentStatus;
  price_cents: number;
  cancellation_reason: string | null;
  cancelled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export const APPOINTMENT_COLUMNS = `id, patient_id, practitioner_id, service_id, start_time, end_time, room, notes,
  status, price_cents, cancellation_reason, cancelled_at, created_at, updated_at`;

const iso = (value: Date) => new Date(value).toISOString();

/** Advisory-lock class of booking turns ("BOOK"), apart from the sealer's and migrations' locks. */
export const BOOKING_LOCK_CLASS = 0x424f4f4b;

/**
 * Bookings of one practice take turns: every transaction that claims a slot (a booking, a
 * reschedule) takes this lock as its first statement. Without it, two bookings whose new rows
 * overlap each wait in the exclusion check for the other's uncommitted row; PostgreSQL aborts one
 * as a deadlock after deadlock_timeout (1 s, several rounds with more contenders), and the
 * survivor may not have committed yet, so the loser can't be told which appointment holds the
 * slot. Taking turns, the next booking's pre-check sees the previous one committed and names it.
 * The exclusion constraints still decide what is stored; the lock only orders the contenders, and
 * different practices never wait for each other (bar a hash collision, which only costs a wait).
 * Taken first, before any row lock, so it cannot be part of a deadlock.
 */
export async function takeBookingTurn(tx: Queryable, practiceId: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2)) AS locked', [BOOKING_LOCK_CLASS, practiceId]);
}

/** Field order follows the response schema, so a stored idempotent replay is byte-identical. */
export function toAppointment(row: AppointmentRow): Appointment {
  return {
    id: row.id,
    patientId: row.patient_id,
    practitionerId: row.practitioner_id,
    serviceId: row.service_id,
    startTime: iso(row.start_time),
    endTime: iso(row.end_time),
    room: row.room,
    notes: row.notes,
    status: row.status,
    priceCents: row.price_cents,
    cancellationReason: row.cancellation_reason,
    cancelledAt: row.cancelled_at === null ? null : iso(row.cancelled_at),
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

export interface Problem extends ErrorDetail {
  code: string;
}

/** The practitioner must be an active user of this practice with the PRACTITIONER role. */
export async function practitionerProblem(tx: Queryable, practitionerId: string): Promise<Problem | null> {
  const { rows } = await tx.query<{ role: string; active: boolean; deactivated_at: Date | null }>(
    'SELECT role, active, deactivated_at FROM users WHERE id = $1',
    [practitionerId],
  );
  const user = rows[0];
  // Another practice's user is invisible here (row-level security): it reads as unknown, so the
  // answer never tells a caller that an id exists elsewhere.
  if (user === undefined) return { code: 'INVALID_REFERENCE', field: 'practitionerId', message: 'no such practitioner in this practice' };
  if (user.role !== 'PRACTITIONER') {
    return { code: 'NOT_A_PRACTITIONER', field: 'practitionerId', message: 'this user does not have the PRACTITIONER role' };
  }
  if (!user.active || user.deactivated_at !== null) {
    return { code: 'PRACTITIONER_INACTIVE', field: 'practitionerId', message: 'this practitioner is deactivated' };
  }
  return null;
}

export async function patientProblem(tx: Queryable, patientId: string): Promise<Problem | null> {
  const { rows } = await tx.query<{ status: string; deleted_at: Date | null }>(
    'SELECT status, deleted_at FROM patients WHERE id = $1',
    [patientId],
  );
  const patient = rows[0];
  if (patient === undefined) return { code: 'INVALID_REFERENCE', field: 'patientId', message: 'no such patient in this practice' };
  if (patient.status === 'INACTIVE' || patient.deleted_at !== null) {
    return { code: 'PATIENT_INACTIVE', field: 'patientId', message: 'this patient is inactive and cannot be booked' };
  }
  return null;
}

export interface ServiceFacts {
  durationMinutes: number;
  priceCents: number;
}

export async function serviceFacts(tx: Queryable, serviceId: string): Promise<ServiceFacts | Problem> {
  const { rows } = await tx.query<{ duration_minutes: number; price_cents: number; active: boolean }>(
    'SELECT duration_minutes, price_cents, active FROM services WHERE id = $1',
    [serviceId],
  );
  const service = rows[0];
  if (service === undefined) return { code: 'INVALID_REFERENCE', field: 'serviceId', message: 'no such service in this practice' };
  if (!service.active) return { code: 'SERVICE_INACTIVE', field: 'serviceId', message: 'this service is deactivated and cannot be booked' };
  return { durationMinutes: service.duration_minutes, priceCents: service.price_cents };
}

export interface SlotRequest {
  start: Date;
  end: Date;
  practitionerId: string;
  patientId: string;
  room: string | null;
  /** The appointment being rescheduled: it doesn't conflict with itself. */
  excludeId: string | null;
}

export interface Conflict {
  id: string;
  field: 'practitionerId' | 'patientId' | 'room';
  start: Date;
  end: Date;
}

/**
 * The first slot-holding appointment that overlaps the request for the same practitioner, patient
 * or room. The same rule as the exclusion constraints, asked in advance so the 409 can name it.
 *
 * Written for row-level security: a non-leakproof expression (lower(), tstzrange &&) can't be used
 * as an index condition under a policy, so the window is given as plain timestamptz comparisons
 * on (practice_id, start_time): an overlapping appointment starts before our end and at most 24
 * hours (the longest allowed) before our start. The index narrows to that window, the rest filters.
 */
export async function findConflict(tx: Queryable, practiceId: string, slot: SlotRequest): Promise<Conflict | null> {
  const earliest = new Date(slot.start.getTime() - MAX_APPOINTMENT_MS);
  const { rows } = await tx.query<{
    id: string;
    practitioner_id: string;
    patient_id: string;
    start_time: Date;
    end_time: Date;
  }>(
    `SELECT id, practitioner_id, patient_id, start_time, end_time
       FROM appointments
      WHERE practice_id = $1
        AND start_time >= $2::timestamptz AND start_time < $3::timestamptz AND end_time > $4::timestamptz
        AND status NOT IN ('CANCELLED', 'NO_SHOW')
        AND (practitioner_id = $5 OR patient_id = $6 OR ($7::text IS NOT NULL AND lower(room) = lower($7::text)))
        AND ($8::uuid IS NULL OR id <> $8::uuid)
      ORDER BY start_time, id
      LIMIT 1`,
    [
      practiceId,
      earliest.toISOString(),
      slot.end.toISOString(),
      slot.start.toISOString(),
      slot.practitionerId,
      slot.patientId,
      slot.room,
      slot.excludeId,
    ],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const field = row.practitioner_id === slot.practitionerId ? 'practitionerId' : row.patient_id === slot.patientId ? 'patientId' : 'room';
  return { id: row.id, field, start: new Date(row.start_time), end: new Date(row.end_time) };
}

export async function lockAppointment(tx: Queryable, id: string): Promise<AppointmentRow | undefined> {
  const { rows } = await tx.query<AppointmentRow>(`SELECT ${APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1 FOR UPDATE`, [id]);
  return rows[0];
}

export async function getAppointment(tx: Queryable, id: string): Promise<AppointmentRow | undefined> {
  const { rows } = await tx.query<AppointmentRow>(`SELECT ${APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1`, [id]);
  return rows[0];
}

export interface ListFilters {
  practiceId: string;
  startDate: string | null;
  endDate: string | null;
  status: AppointmentStatus | null;
  practitionerId: string | null;
  patientId: string | null;
  limit: number;
  offset: number;
}

/**
 * [startDate 00:00, endDate + 1 day 00:00) in the practice's time zone, as instants. PostgreSQL
 * computes them ((date)::timestamp AT TIME ZONE tz) and knows every daylight-saving rule: a day is
 * 23 or 25 hours long when the clocks change, and nothing shifts. They are computed in a query of
 * their own and passed on as plain timestamptz values, because under row-level security an
 * expression calling timezone() (not leakproof) could not be used as an index condition.
 */
export async function dayBounds(
  tx: Queryable,
  practiceId: string,
  startDate: string | null,
  endDate: string | null,
): Promise<{ from: Date | null; until: Date | null }> {
  const { rows } = await tx.query<{ from_ts: Date | null; until_ts: Date | null }>(
    `SELECT ($2::date::timestamp AT TIME ZONE time_zone) AS from_ts,
            (($3::date + 1)::timestamp AT TIME ZONE time_zone) AS until_ts
       FROM practices WHERE id = $1`,
    [practiceId, startDate, endDate],
  );
  const row = rows[0];
  return { from: row?.from_ts ?? null, until: row?.until_ts ?? null };
}

/** Appointments starting within the calendar days [startDate, endDate] of the practice. */
export async function listAppointments(tx: Queryable, filters: ListFilters): Promise<{ rows: AppointmentRow[]; total: number }> {
  const { from, until } = await dayBounds(tx, filters.practiceId, filters.startDate, filters.endDate);
  const params = [
    filters.practiceId,
    from === null ? null : new Date(from).toISOString(),
    until === null ? null : new Date(until).toISOString(),
    filters.status,
    filters.practitionerId,
    filters.patientId,
  ];
  const where = `
     WHERE a.practice_id = $1
       AND ($2::timestamptz IS NULL OR a.start_time >= $2::timestamptz)
       AND ($3::timestamptz IS NULL OR a.start_time < $3::timestamptz)
       AND ($4::text IS NULL OR a.status = $4::text)
       AND ($5::uuid IS NULL OR a.practitioner_id = $5::uuid)
       AND ($6::uuid IS NULL OR a.patient_id = $6::uuid)`;
  const count = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM appointments a ${where}`, params);
  const columns = APPOINTMENT_COLUMNS.split(',').map((c) => `a.${c.trim()}`).join(', ');
  const { rows } = await tx.query<AppointmentRow>(
    `SELECT ${columns} FROM appointments a ${where} ORDER BY a.start_time, a.id LIMIT $7 OFFSET $8`,
    [...params, filters.limit, filters.offset],
  );
  return { rows, total: count.rows[0]?.n ?? 0 };
}
