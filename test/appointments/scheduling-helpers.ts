// Fixtures for the scheduling tests (services, appointments, reports, idempotency): patients are
// inserted with SQL through the practice's own scope, services and appointments go through the API.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Database } from '../../src/db/database.js';
import { withPractice, withSystem } from '../../src/db/scope.js';

export interface PatientFixture {
  firstName?: string;
  lastName?: string;
  status?: 'ACTIVE' | 'VIP' | 'INACTIVE';
  deleted?: boolean;
}

export async function insertPatient(db: Database, practiceId: string, fixture: PatientFixture = {}): Promise<string> {
  return withPractice(db, practiceId, async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO patients (practice_id, first_name, last_name, email, status, deleted_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END) RETURNING id`,
      [
        practiceId,
        fixture.firstName ?? 'Ada',
        fixture.lastName ?? `Patient${randomBytes(3).toString('hex')}`,
        `p.${randomBytes(6).toString('hex')}@example.test`,
        fixture.status ?? 'ACTIVE',
        fixture.deleted ?? false,
      ],
    );
    return rows[0]!.id;
  });
}

export async function insertPatients(db: Database, practiceId: string, count: number): Promise<string[]> {
  return withPractice(db, practiceId, async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO patients (practice_id, first_name, last_name)
       SELECT $1, 'Bulk', 'Patient' || g FROM generate_series(1, $2) AS g RETURNING id`,
      [practiceId, count],
    );
    return rows.map((row) => row.id);
  });
}

export interface ServiceBody {
  name?: string;
  category?: string;
  durationMinutes?: number;
  priceCents?: number;
  active?: boolean;
}

export async function createService(
  app: FastifyInstance,
  headers: Record<string, string>,
  body: ServiceBody = {},
): Promise<{ id: string; durationMinutes: number; priceCents: number }> {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/services',
    headers,
    payload: {
      name: body.name ?? `Service ${randomBytes(4).toString('hex')}`,
      category: body.category ?? 'Injectables',
      durationMinutes: body.durationMinutes ?? 60,
      priceCents: body.priceCents ?? 25_000,
      ...(body.active === undefined ? {} : { active: body.active }),
    },
  });
  assert.equal(response.statusCode, 201, response.body);
  return response.json();
}

export interface Booking {
  patientId: string;
  practitionerId: string;
  serviceId: string;
  startTime: string;
  endTime?: string;
  room?: string | null;
  notes?: string | null;
}

export function book(app: FastifyInstance, headers: Record<string, string>, body: Booking | Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/appointments', headers, payload: body });
}

export interface ErrorBody {
  error: { code: string; message: string; details: Array<{ field: string; message: string }> };
}

/** The conflicting appointment id named in a 409's details. */
export function conflictingId(response: { json(): unknown }): string | undefined {
  const body = response.json() as ErrorBody;
  return body.error.details.find((detail) => detail.field === 'conflictingAppointmentId')?.message;
}

/** An instant `hours` from now, on a whole minute, as ISO 8601. */
export function hoursFromNow(hours: number): string {
  const date = new Date(Date.now() + hours * 3_600_000);
  date.setUTCSeconds(0, 0);
  return date.toISOString();
}

/** Appointments of the practice, or only those starting on one UTC day (tests run side by side). */
export async function countAppointments(db: Database, practiceId: string, utcDay: string | null = null): Promise<number> {
  return withPractice(db, practiceId, async (tx) => {
    const { rows } = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM appointments
        WHERE $1::date IS NULL OR (start_time >= $1::date::timestamp AT TIME ZONE 'UTC'
                                   AND start_time < ($1::date + 1)::timestamp AT TIME ZONE 'UTC')`,
      [utcDay],
    );
    return rows[0]!.n;
  });
}

/** Another user of the practice (no password: these tests never log in as them). */
export async function addUser(
  db: Database,
  practiceId: string,
  role: 'PRACTITIONER' | 'STAFF' = 'PRACTITIONER',
  active = true,
): Promise<string> {
  return withSystem(db, async (tx) => {
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO users (practice_id, email, password_hash, role, first_name, last_name, active)
       VALUES ($1, $2, 'not-a-hash', $3, 'Extra', $4, $5) RETURNING id`,
      [practiceId, `extra.${randomBytes(6).toString('hex')}@example.test`, role, role.toLowerCase(), active],
    );
    return rows[0]!.id;
  });
}

export async function auditActions(db: Database, practiceId: string, resourceId: string): Promise<string[]> {
  return withPractice(db, practiceId, async (tx) => {
    const { rows } = await tx.query<{ action: string }>(
      'SELECT action FROM audit_events WHERE $1 = ANY(resource_ids) ORDER BY id',
      [resourceId],
    );
    return rows.map((row) => row.action);
  });
}
