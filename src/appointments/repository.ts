// The SQL of appointments. Every function takes a practice-scoped transaction (withPractice) or
// returns a statement for readInPractice (the hot reads), so row-level security already limits it
// to the caller's practice; the explicit practice filters are there for the planner and for
// readability.
import type { Queryable } from '../db/database.js';
import { isoFromUtcText, utcText } from '../db/timestamps.js';
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

type TimestampColumn = 'start_time' | 'end_time' | 'cancelled_at' | 'created_at' | 'updated_at';
const TIMESTAMP_COLUMNS: ReadonlySet<string> = new Set<TimestampColumn>(['start_time', 'end_time', 'cancelled_at', 'created_at', 'updated_at']);

/** An appointment as the hot reads return it: every timestamp as UTC text (db/timestamps.ts). */
export type AppointmentTextRow = Omit<AppointmentRow, TimestampColumn> & {
  start_time: string;
  end_time: string;
  cancelled_at: string | null;
  created_at: string;
  updated_at: string;
};

/** The columns qualified by `alias`, the timestamps as UTC text: a page of 40 appointments has 160,
 *  and parsing each into a Date only to print it again was a quarter of the calendar's Node time. */
const textColumnsOf = (alias: string) =>
  APPOINTMENT_COLUMNS.split(',')
    .map((column) => column.trim())
    .map((column) => (TIMESTAMP_COLUMNS.has(column) ? `${utcText(`${alias}.${column}`)} AS ${column}` : `${alias}.${column}`))
    .join(', ');

const iso = (value: Date | string) => (typeof value === 'string' ? isoFromUtcText(value) : new Date(value).toISOString());

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
export function toAppointment(row: AppointmentRow | AppointmentTextRow): Appointment {
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

/** One appointment by id, as a statement for readInPractice: the hot read path. */
export function findAppointmentStatement(practiceId: string, id: string): { sql: string; params: unknown[] } {
  return { sql: `SELECT ${textColumnsOf('a')} FROM appointments a WHERE a.practice_id = $1 AND a.id = $2`, params: [practiceId, id] };
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
 * The list's filters as conditions on `alias`, their values appended to `params` ($1 is the
 * practice). Only the filters given appear, so a statement has one good plan whatever its values:
 * readInPractice runs it with a generic plan.
 *
 * startDate and endDate become [startDate 00:00, endDate + 1 day 00:00) in the practice's time
 * zone. PostgreSQL turns the dates into instants ((date)::timestamp AT TIME ZONE tz) and knows every
 * daylight-saving rule: a day is 23 or 25 hours long when the clocks change, and nothing shifts.
 * Each bound is an uncorrelated subquery, computed once before the scan: the condition is then a
 * plain timestamptz comparison, which row-level security lets the index use (an expression
 * calling timezone() on the row's side would not be leakproof).
 */
function listConditions(alias: string, filters: ListFilters, params: unknown[]): string {
  const conditions = [`${alias}.practice_id = $1`];
  const bind = (value: unknown) => `$${params.push(value)}`;
  if (filters.startDate !== null) {
    conditions.push(`${alias}.start_time >= (SELECT ${bind(filters.startDate)}::date::timestamp AT TIME ZONE pr.time_zone FROM practices pr WHERE pr.id = $1)`);
  }
  if (filters.endDate !== null) {
    conditions.push(`${alias}.start_time < (SELECT (${bind(filters.endDate)}::date + 1)::timestamp AT TIME ZONE pr.time_zone FROM practices pr WHERE pr.id = $1)`);
  }
  if (filters.status !== null) conditions.push(`${alias}.status = ${bind(filters.status)}::text`);
  if (filters.practitionerId !== null) conditions.push(`${alias}.practitioner_id = ${bind(filters.practitionerId)}::uuid`);
  if (filters.patientId !== null) conditions.push(`${alias}.patient_id = ${bind(filters.patientId)}::uuid`);
  return conditions.join(' AND ');
}

const columnsOf = (alias: string) => APPOINTMENT_COLUMNS.split(',').map((column) => `${alias}.${column.trim()}`).join(', ');

/**
 * Appointments starting within the calendar days [startDate, endDate] of the practice, one page,
 * sorted by start time, with the exact total: one statement. The total comes from a count joined
 * to the page, so it arrives even when the page is empty (one row of nulls but the total).
 */
export function listAppointmentsStatement(filters: ListFilters): { sql: string; params: unknown[] } {
  const params: unknown[] = [filters.practiceId];
  const where = listConditions('a', filters, params);
  const limit = `$${params.push(filters.limit)}`;
  const offset = `$${params.push(filters.offset)}`;
  // The page's start_time is text by then: the outer order uses the instant (sort_time), not returned.
  return {
    sql: `SELECT t.total, ${columnsOf('page')}
            FROM (SELECT count(*)::int AS total FROM appointments a WHERE ${where}) AS t
            LEFT JOIN (SELECT ${textColumnsOf('a')}, a.start_time AS sort_time
                         FROM appointments a WHERE ${where}
                        ORDER BY a.start_time, a.id LIMIT ${limit} OFFSET ${offset}) AS page ON true
           ORDER BY page.sort_time, page.id`,
    params,
  };
}

/** A row of listAppointmentsStatement: the page's columns are null when the page is empty. */
export type AppointmentListRow = { total: number } & (AppointmentTextRow | { [column in keyof AppointmentTextRow]: null });

export function appointmentListResult(rows: AppointmentListRow[]): { rows: AppointmentTextRow[]; total: number } {
  return { rows: rows.filter((row): row is AppointmentTextRow & { total: number } => row.id !== null), total: Number(rows[0]?.total ?? 0) };
}
