// Shared by the patient tests: an app on each database, practices with every role, and a few
// helpers to make patients and read what the database holds behind the API.
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Database } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';

export type Headers = { authorization: string };

let counter = 0;
/** A valid PatientCreate body, unique per call unless fields are overridden. */
export function newPatient(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    firstName: 'Jane',
    lastName: `Doe${String.fromCharCode(97 + (counter % 26))}${'x'.repeat(Math.floor(counter / 26) % 5)}`,
    dateOfBirth: '1985-04-12',
    email: `jane.${counter}.${Date.now()}@example.com`,
    phoneNumber: `+1212555${String(1000 + (counter % 9000)).padStart(4, '0')}`,
    ...overrides,
  };
}

export async function createPatient(app: FastifyInstance, headers: Headers, body: Record<string, unknown> = newPatient()) {
  const response = await app.inject({ method: 'POST', url: '/v1/patients', headers, payload: body });
  assert.equal(response.statusCode, 201, response.body);
  return response.json() as { id: string } & Record<string, unknown>;
}

export function errorOf(response: LightMyRequestResponse) {
  return (response.json() as { error: { code: string; message: string; details: Array<{ field: string; message: string }> } }).error;
}

/** Rows in the patients table of a practice, read past the API and its role. */
export async function storedPatientCount(db: Database, practiceId: string): Promise<number> {
  const { rows } = await withSystem(db, (tx) =>
    tx.query<{ n: number }>('SELECT count(*)::int AS n FROM patients WHERE practice_id = $1', [practiceId]),
  );
  return rows[0]!.n;
}

export interface StoredAuditEvent {
  action: string;
  outcome: string;
  actor_id: string;
  resource_ids: string[];
  details: Record<string, unknown>;
  request_id: string;
}

export async function auditEventsFor(db: Database, requestId: string): Promise<StoredAuditEvent[]> {
  const { rows } = await withSystem(db, (tx) =>
    tx.query<StoredAuditEvent>(
      'SELECT action, outcome, actor_id, resource_ids, details, request_id FROM audit_events WHERE request_id = $1 ORDER BY id',
      [requestId],
    ),
  );
  return rows;
}
