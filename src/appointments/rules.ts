// The scheduling rules as small pure functions, shared by the booking and rescheduling paths and
// unit-tested on their own. The database enforces the same interval rule with exclusion
// constraints (tstzrange(start, end, '[)') &&), so this file and 004_scheduling.sql must agree.

export const APPOINTMENT_STATUSES = ['SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW'] as const;
export type AppointmentStatus = (typeof APPOINTMENT_STATUSES)[number];

/** Statuses that no longer hold their slot: someone else may be booked into it. */
export const SLOT_FREEING_STATUSES: readonly AppointmentStatus[] = ['CANCELLED', 'NO_SHOW'];

export interface Interval {
  start: Date;
  end: Date;
}

/** Half-open [start, end): one ending at 10:00 and the next starting at 10:00 don't overlap. */
export function overlaps(a: Interval, b: Interval): boolean {
  return a.start.getTime() < b.end.getTime() && b.start.getTime() < a.end.getTime();
}

/**
 * Allowed status changes. Issue 4: SCHEDULED -> CONFIRMED -> COMPLETED, and SCHEDULED/CONFIRMED ->
 * CANCELLED (with a reason). Added: SCHEDULED/CONFIRMED -> NO_SHOW, once the start time has passed.
 * Everything else, including "changing" to the current status, is INVALID_TRANSITION.
 */
const TRANSITIONS: Readonly<Record<AppointmentStatus, readonly AppointmentStatus[]>> = {
  SCHEDULED: ['CONFIRMED', 'CANCELLED', 'NO_SHOW'],
  CONFIRMED: ['COMPLETED', 'CANCELLED', 'NO_SHOW'],
  COMPLETED: [],
  CANCELLED: [],
  NO_SHOW: [],
};

export function canTransition(from: AppointmentStatus, to: AppointmentStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function allowedTransitions(from: AppointmentStatus): readonly AppointmentStatus[] {
  return TRANSITIONS[from];
}

/** Only appointments still ahead of their visit can move. */
export function isReschedulable(status: AppointmentStatus): boolean {
  return status === 'SCHEDULED' || status === 'CONFIRMED';
}

export const MAX_APPOINTMENT_MS = 24 * 60 * 60 * 1000;
/** Earliest accepted start: older dates are typing mistakes, not appointments. */
export const EARLIEST_START = Date.parse('2000-01-01T00:00:00Z');
/** Latest accepted start, relative to now. */
export const MAX_YEARS_AHEAD = 10;

/** ISO 8601 date-time with an explicit offset (Z or ±hh:mm): a local time alone is ambiguous. */
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

export function parseInstant(value: string): Date | null {
  if (!ISO_WITH_OFFSET.test(value)) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : new Date(time);
}

export type TimeProblem =
  | { code: 'INVALID_TIME_RANGE'; field: string; message: string }
  | { code: 'APPOINTMENT_OUT_OF_RANGE'; field: string; message: string };

/** Why this interval can't be an appointment, or null when it can. */
export function timeProblem(interval: Interval, now: Date): TimeProblem | null {
  const start = interval.start.getTime();
  const end = interval.end.getTime();
  const latest = new Date(now);
  latest.setUTCFullYear(latest.getUTCFullYear() + MAX_YEARS_AHEAD);
  if (start < EARLIEST_START || start > latest.getTime()) {
    return {
      code: 'APPOINTMENT_OUT_OF_RANGE',
      field: 'startTime',
      message: `must be between 2000-01-01 and ${MAX_YEARS_AHEAD} years from now`,
    };
  }
  if (end <= start) return { code: 'INVALID_TIME_RANGE', field: 'endTime', message: 'must be after startTime' };
  if (end - start > MAX_APPOINTMENT_MS) {
    return { code: 'INVALID_TIME_RANGE', field: 'endTime', message: 'an appointment lasts at most 24 hours' };
  }
  return null;
}

/** The end of an appointment: the one given, or the start plus the service's duration. */
export function resolveEnd(start: Date, end: Date | null, durationMinutes: number): Date {
  return end ?? new Date(start.getTime() + durationMinutes * 60_000);
}

/** Rooms are compared case-insensitively by the database; stored trimmed with single spaces. */
export function normaliseRoom(room: string | null | undefined): string | null {
  if (room === null || room === undefined) return null;
  const cleaned = room.normalize('NFC').trim().replace(/\s+/g, ' ');
  return cleaned === '' ? null : cleaned;
}
