// POST /v1/patients/import: row-by-row validation with per-row results; atomic by default
// (all or nothing), partial on request; duplicates within the file and against stored patients.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { startTestApp } from '../helpers/app.js';
import { createTestPractice } from '../helpers/identity.js';
import { auditEventsFor, createPatient, errorOf, newPatient, storedPatientCount } from './helpers.js';

interface ImportBody {
  mode: string;
  total: number;
  created: number;
  failed: number;
  results: Array<{ row: number; status: string; id?: string; existingPatientId?: string; errors?: Array<{ field: string; message: string }> }>;
}

for (const target of databaseTargets()) {
  describe(`patient import on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, { rateLimitEnabled: false });
    const practice = await createTestPractice(app);
    const headers = practice.users.ADMIN.headers;
    const importRows = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/patients/import', headers, payload: payload as object });

    test('atomic (default): every valid row created, ids per row in row order, normalised', async () => {
      const rows = [newPatient({ email: 'A.One@Example.com' }), newPatient({ phoneNumber: '(212) 555-0100' }), newPatient()];
      const response = await importRows({ patients: rows });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as ImportBody;
      assert.equal(body.mode, 'atomic');
      assert.deepEqual([body.total, body.created, body.failed], [3, 3, 0]);
      assert.deepEqual(body.results.map((r) => [r.row, r.status]), [[0, 'created'], [1, 'created'], [2, 'created']]);
      const first = await app.inject({ url: `/v1/patients/${body.results[0]!.id}`, headers });
      assert.equal(first.json().email, 'a.one@example.com');
      const second = await app.inject({ url: `/v1/patients/${body.results[1]!.id}`, headers });
      assert.equal(second.json().phoneNumber, '+12125550100');
    });

    test('atomic: one bad row means nothing is written, and the errors name row and field', async () => {
      const before = await storedPatientCount(db, practice.id);
      const response = await importRows({ patients: [newPatient(), newPatient({ email: 'nope' }), newPatient({ firstName: '<script>' }), newPatient()] });
      assert.equal(response.statusCode, 400, response.body);
      const error = errorOf(response);
      assert.equal(error.code, 'VALIDATION_ERROR');
      assert.deepEqual(error.details.map((d) => d.field).sort(), ['patients.1.email', 'patients.2.firstName']);
      assert.equal(await storedPatientCount(db, practice.id), before);
    });

    test('atomic: rows duplicating stored patients are a 409 naming them, nothing written', async () => {
      const existing = await createPatient(app, headers, newPatient({ email: 'stored@example.com' }));
      const before = await storedPatientCount(db, practice.id);
      const response = await importRows({ patients: [newPatient(), newPatient({ email: 'STORED@example.com' })] });
      assert.equal(response.statusCode, 409, response.body);
      const error = errorOf(response);
      assert.equal(error.code, 'PATIENT_EXISTS');
      assert.equal(error.details[0]!.field, 'patients.1.email');
      assert.match(error.details[0]!.message, new RegExp(existing.id));
      assert.equal(await storedPatientCount(db, practice.id), before);
    });

    test('partial: valid rows are created, the others reported with their errors or the existing id', async () => {
      const existing = await createPatient(app, headers, newPatient({ firstName: 'Kim', lastName: 'Park', dateOfBirth: '1992-12-01', email: null }));
      const before = await storedPatientCount(db, practice.id);
      const rows = [
        newPatient(),
        newPatient({ dateOfBirth: '2001-02-29' }),
        { firstName: 'KIM', lastName: 'park', dateOfBirth: '1992-12-01' },
        newPatient({ email: 'twice@example.com' }),
        newPatient({ email: 'Twice@example.com' }),
        { firstName: 'Only' },
        'not an object',
        newPatient({ firstName: true }),
      ];
      const response = await importRows({ mode: 'partial', patients: rows });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as ImportBody;
      assert.deepEqual([body.total, body.created, body.failed], [8, 2, 6]);
      assert.deepEqual(body.results.map((r) => r.status), ['created', 'failed', 'failed', 'created', 'failed', 'failed', 'failed', 'failed']);
      assert.equal(body.results[1]!.errors![0]!.field, 'patients.1.dateOfBirth');
      assert.equal(body.results[2]!.existingPatientId, existing.id);
      assert.match(body.results[4]!.errors![0]!.message, /duplicates row 3/);
      assert.deepEqual(body.results[5]!.errors!.map((e) => e.field), ['patients.5.lastName']);
      assert.equal(body.results[6]!.errors![0]!.field, 'patients.6');
      assert.equal(body.results[7]!.errors![0]!.field, 'patients.7.firstName');
      assert.equal(await storedPatientCount(db, practice.id), before + 2);
    });

    test('the body must be {patients: [...], mode?}: wrong shapes, unknown modes and 10,001 rows are 400s', async () => {
      const before = await storedPatientCount(db, practice.id);
      const tooMany = Array.from({ length: 10_001 }, () => ({ firstName: 'A', lastName: 'B' }));
      for (const payload of [[newPatient()], { patients: [] }, { patients: [newPatient()], mode: 'best-effort' }, { rows: [newPatient()] }, { patients: tooMany }]) {
        const response = await importRows(payload);
        assert.equal(response.statusCode, 400, JSON.stringify(payload).slice(0, 80));
      }
      assert.equal(await storedPatientCount(db, practice.id), before);
    });

    test('10,000 rows in one request (about 2 MB, over the default body limit) in one transaction', async () => {
      const stamp = Date.now();
      const rows = Array.from({ length: 10_000 }, (_, i) => ({
        firstName: 'Bulk',
        lastName: `Patient${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + (Math.floor(i / 26) % 26))}`,
        dateOfBirth: `19${String(50 + (i % 50))}-0${1 + (i % 9)}-1${i % 10}`,
        email: `bulk${i}.${stamp}@example.com`,
        phoneNumber: `+1718555${String(i).padStart(4, '0')}`,
        externalIds: { alle: `A${i}` },
      }));
      const started = Date.now();
      const response = await importRows({ patients: rows });
      assert.equal(response.statusCode, 200, response.body.slice(0, 500));
      const body = response.json() as ImportBody;
      assert.equal(body.created, 10_000, JSON.stringify(body.results.find((r) => r.status !== 'created')));
      const [event] = await auditEventsFor(db, String(response.headers['x-request-id']));
      assert.equal(event!.action, 'patient.import');
      assert.equal(event!.resource_ids.length, 10_000);
      const list = await app.inject({ url: '/v1/patients?q=bulk&limit=1', headers });
      assert.equal(list.json().pagination.total, 10_000);
      console.log(`# imported 10,000 rows on ${target.kind} in ${Date.now() - started} ms`);
    });

    test('a refused atomic import is still audited, as a failure without row data', async () => {
      const response = await importRows({ patients: [newPatient({ lastName: 'Secretname', email: 'bad' })] });
      assert.equal(response.statusCode, 400);
      const events = await auditEventsFor(db, String(response.headers['x-request-id']));
      assert.equal(events.length, 1);
      assert.equal(events[0]!.outcome, 'failure');
      assert.ok(!JSON.stringify(events[0]).includes('Secretname'));
    });
  });
}
