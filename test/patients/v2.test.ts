// /v2 (beta) serves the same stored patients in the v2 shape (blueprint 5.2): contact details under
// `contact`, v1's phoneNumber still accepted and sent but marked deprecated. Reads and writes go
// through the same handlers as v1 (validation, duplicates, audit, Idempotency-Key); nothing of v1
// changes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { auditEventsFor, errorOf, storedPatientCount } from './helpers.js';

type PatientV2Body = { id: string; phoneNumber: string | null; email: string | null; contact: { phone: string | null; email: string | null }; status: string; deletedAt: string | null };

let serial = 0;
/** A PatientCreate v2 body, unique per call. */
function newPatientV2(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  serial += 1;
  const letters = `${String.fromCharCode(97 + (serial % 26))}${String.fromCharCode(97 + Math.floor(serial / 26) % 26)}`;
  return { firstName: 'Marta', lastName: `Vidal${letters}`, dateOfBirth: '1990-02-03', ...overrides };
}

for (const target of databaseTargets()) {
  describe(`patients v2 on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Versions Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const headers = practice.users.STAFF.headers;
    const created = await app.inject({
      method: 'POST',
      url: '/v1/patients',
      headers: practice.users.ADMIN.headers,
      payload: { firstName: 'Lucía', lastName: 'Ortega', email: 'lucia.ortega@example.com', phoneNumber: '(305) 555-0199' },
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = (created.json() as { id: string }).id;

    test('v2 carries contact.phone and contact.email from the same record as v1', async () => {
      const v1 = (await app.inject({ url: `/v1/patients/${id}`, headers })).json() as Record<string, unknown>;
      const v2 = (await app.inject({ url: `/v2/patients/${id}`, headers })).json() as Record<string, unknown>;
      assert.deepEqual(v2.contact, { phone: '+13055550199', email: 'lucia.ortega@example.com' });
      assert.equal(v2.phoneNumber, v1.phoneNumber, 'the deprecated field is still sent in v2');
      assert.equal(v1.contact, undefined, 'v1 is unchanged');
      const { contact: _contact, ...rest } = v2;
      assert.deepEqual(rest, v1);
    });

    test('the v2 list pages like v1', async () => {
      const response = await app.inject({ url: '/v2/patients?limit=1', headers });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { data: Array<{ contact: object }>; pagination: { total: number } };
      assert.equal(body.data.length, 1);
      assert.equal(body.pagination.total, 1);
      assert.ok(body.data[0]?.contact);
    });

    test('practice B gets 404 for practice A’s patient through v2 too', async () => {
      assert.equal((await app.inject({ url: `/v2/patients/${id}`, headers: other.users.ADMIN.headers })).statusCode, 404);
    });

    test('v2 routes need the same permission and credentials as v1', async () => {
      assert.equal((await app.inject({ url: '/v2/patients' })).statusCode, 401);
    });

    const admin = practice.users.ADMIN.headers;
    const postV2 = (payload: Record<string, unknown>, extra: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url: '/v2/patients', headers: { ...admin, ...extra }, payload });
    const patchV2 = (patientId: string, payload: Record<string, unknown>) =>
      app.inject({ method: 'PATCH', url: `/v2/patients/${patientId}`, headers: admin, payload });

    test('POST /v2/patients takes contact.phone: 201 in the v2 shape, Location under /v2, v1 reads the same record', async () => {
      const response = await postV2(newPatientV2({ contact: { phone: '(212) 555-0147', email: 'Marta.Create@Example.com' } }));
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json() as PatientV2Body;
      assert.equal(response.headers.location, `/v2/patients/${body.id}`);
      assert.deepEqual(body.contact, { phone: '+12125550147', email: 'marta.create@example.com' });
      assert.equal(body.phoneNumber, '+12125550147', 'the deprecated field is still sent');
      assert.equal(body.email, 'marta.create@example.com');
      const v1 = (await app.inject({ url: `/v1/patients/${body.id}`, headers })).json() as Record<string, unknown>;
      assert.equal(v1.phoneNumber, '+12125550147');
      assert.equal(v1.email, 'marta.create@example.com');
    });

    test('the deprecated phoneNumber is still accepted by v2 writes and answered under contact.phone', async () => {
      const response = await postV2(newPatientV2({ phoneNumber: '+44 20 7946 0958' }));
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json() as PatientV2Body;
      assert.equal(body.contact.phone, '+442079460958');
      assert.equal(body.phoneNumber, '+442079460958');
    });

    test('phoneNumber and contact.phone may both be sent when they are the same number, in any notation', async () => {
      const response = await postV2(newPatientV2({ phoneNumber: '+1 (305) 555-0123', contact: { phone: '305-555-0123' } }));
      assert.equal(response.statusCode, 201, response.body);
      assert.equal((response.json() as PatientV2Body).contact.phone, '+13055550123');
    });

    test('phoneNumber and contact.phone that disagree are a 400 naming both fields, and nothing is stored', async () => {
      const before = await storedPatientCount(db, practice.id);
      const response = await postV2(newPatientV2({ phoneNumber: '+13055550123', contact: { phone: '+13055550124' } }));
      assert.equal(response.statusCode, 400);
      const error = errorOf(response);
      assert.equal(error.code, 'VALIDATION_ERROR');
      assert.deepEqual(error.details.map((d) => d.field).sort(), ['contact.phone', 'phoneNumber']);
      const cleared = await postV2(newPatientV2({ phoneNumber: null, contact: { phone: '+13055550124' } }));
      assert.equal(cleared.statusCode, 400, 'null and a number disagree too');
      const emails = await postV2(newPatientV2({ email: 'one@example.com', contact: { email: 'two@example.com' } }));
      assert.equal(emails.statusCode, 400);
      assert.deepEqual(errorOf(emails).details.map((d) => d.field).sort(), ['contact.email', 'email']);
      assert.equal(await storedPatientCount(db, practice.id), before);
    });

    test('a bad contact.phone is refused under the name the client sent; unknown or empty contact objects are 400', async () => {
      const invalid = await postV2(newPatientV2({ contact: { phone: '12' } }));
      assert.equal(invalid.statusCode, 400);
      assert.deepEqual(errorOf(invalid).details.map((d) => d.field), ['contact.phone']);
      const legacy = await postV2(newPatientV2({ phoneNumber: '12' }));
      assert.deepEqual(errorOf(legacy).details.map((d) => d.field), ['phoneNumber']);
      const unknown = await postV2(newPatientV2({ contact: { phone: '+13055550125', fax: '+13055550126' } }));
      assert.equal(unknown.statusCode, 400);
      assert.equal((await postV2(newPatientV2({ contact: {} }))).statusCode, 400);
      assert.equal((await postV2(newPatientV2({ contact: { phone: 13055550125 } }))).statusCode, 400, 'no type coercion in v2 bodies either');
    });

    test('v2 creates follow the duplicate rules of v1: the same email is 409 PATIENT_EXISTS naming the patient', async () => {
      const response = await postV2(newPatientV2({ contact: { email: 'LUCIA.ORTEGA@example.com' } }));
      assert.equal(response.statusCode, 409, response.body);
      const error = errorOf(response);
      assert.equal(error.code, 'PATIENT_EXISTS');
      assert.match(error.message, new RegExp(id));
    });

    test('v2 writes need write:patients like v1: STAFF is 403, no credentials 401', async () => {
      assert.equal((await app.inject({ method: 'POST', url: '/v2/patients', headers, payload: newPatientV2() })).statusCode, 403);
      assert.equal((await app.inject({ method: 'POST', url: '/v2/patients', payload: newPatientV2() })).statusCode, 401);
      assert.equal((await app.inject({ method: 'DELETE', url: `/v2/patients/${id}`, headers })).statusCode, 403);
    });

    test('a v2 create is audited exactly like a v1 create, in its own transaction, without PHI', async () => {
      const response = await postV2(newPatientV2({ contact: { phone: '+13055550127' } }));
      assert.equal(response.statusCode, 201, response.body);
      const events = await auditEventsFor(db, String(response.headers['x-request-id']));
      assert.deepEqual(events.map((e) => [e.action, e.outcome]), [['patient.create', 'success']]);
      assert.deepEqual(events[0]!.resource_ids, [(response.json() as PatientV2Body).id]);
      assert.ok((events[0]!.details.fields as string[]).includes('phoneNumber'), 'the stored field is named, as in v1');
      assert.ok(!JSON.stringify(events).includes('5550127'), 'no phone number in the audit log');
    });

    test('Idempotency-Key on POST /v2/patients replays the first v2 answer and its /v2 Location', async () => {
      const body = newPatientV2({ contact: { phone: '+13055550128' } });
      const first = await postV2(body, { 'idempotency-key': 'v2-create-1' });
      assert.equal(first.statusCode, 201, first.body);
      const retry = await postV2(body, { 'idempotency-key': 'v2-create-1' });
      assert.equal(retry.statusCode, 201);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.headers.location, first.headers.location);
      assert.deepEqual(retry.json(), first.json());
      const other = await postV2(newPatientV2(), { 'idempotency-key': 'v2-create-1' });
      assert.equal(other.statusCode, 422, 'the same key with another body');
    });

    test('PATCH /v2/patients/:id changes contact.phone, clears it with null, and answers in the v2 shape', async () => {
      const created = (await postV2(newPatientV2({ contact: { phone: '+13055550129' } }))).json() as PatientV2Body;
      const changed = await patchV2(created.id, { contact: { phone: '+1 305 555 0130' }, status: 'VIP' });
      assert.equal(changed.statusCode, 200, changed.body);
      const body = changed.json() as PatientV2Body;
      assert.equal(body.contact.phone, '+13055550130');
      assert.equal(body.phoneNumber, '+13055550130');
      assert.equal(body.status, 'VIP');
      const legacy = await patchV2(created.id, { phoneNumber: '+13055550131' });
      assert.equal((legacy.json() as PatientV2Body).contact.phone, '+13055550131');
      const cleared = await patchV2(created.id, { contact: { phone: null } });
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.deepEqual((cleared.json() as PatientV2Body).contact, { phone: null, email: null });
      const conflicting = await patchV2(created.id, { phoneNumber: '+13055550132', contact: { phone: '+13055550133' } });
      assert.equal(conflicting.statusCode, 400);
      assert.deepEqual(errorOf(conflicting).details.map((d) => d.field).sort(), ['contact.phone', 'phoneNumber']);
      assert.equal((await patchV2(created.id, {})).statusCode, 400, 'at least one field');
      const duplicate = await patchV2(created.id, { contact: { email: 'lucia.ortega@example.com' } });
      assert.equal(duplicate.statusCode, 409);
      assert.equal(errorOf(duplicate).code, 'PATIENT_EXISTS');
      assert.equal((await patchV2(id, { notes: 'x' }).then((r) => r.statusCode)), 200);
      const foreign = await app.inject({ method: 'PATCH', url: `/v2/patients/${id}`, headers: other.users.ADMIN.headers, payload: { notes: 'probe' } });
      assert.equal(foreign.statusCode, 404, 'another practice’s patient is a 404 through v2 too');
    });

    test('DELETE /v2/patients/:id deactivates (INACTIVE, deletedAt kept) and answers in the v2 shape', async () => {
      const created = (await postV2(newPatientV2({ contact: { phone: '+13055550134' } }))).json() as PatientV2Body;
      const response = await app.inject({ method: 'DELETE', url: `/v2/patients/${created.id}`, headers: admin });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as PatientV2Body;
      assert.equal(body.status, 'INACTIVE');
      assert.ok(body.deletedAt);
      assert.equal(body.contact.phone, '+13055550134');
      const again = (await app.inject({ method: 'DELETE', url: `/v2/patients/${created.id}`, headers: admin })).json() as PatientV2Body;
      assert.equal(again.deletedAt, body.deletedAt);
      const events = await auditEventsFor(db, String(response.headers['x-request-id']));
      assert.deepEqual(events.map((e) => [e.action, e.outcome]), [['patient.deactivate', 'success']]);
      assert.equal((await app.inject({ method: 'DELETE', url: '/v2/patients/not-a-uuid', headers: admin })).statusCode, 404);
    });

    test('POST /v2/patients/import takes v2 rows; a row whose phone fields disagree fails under its own names', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/v2/patients/import',
        headers: admin,
        payload: {
          mode: 'partial',
          patients: [
            newPatientV2({ contact: { phone: '+13055550135' } }),
            newPatientV2({ phoneNumber: '+13055550136', contact: { phone: '+13055550137' } }),
            newPatientV2({ contact: { phone: 'nope' } }),
          ],
        },
      });
      assert.equal(response.statusCode, 200, response.body);
      const result = response.json() as { created: number; results: Array<{ row: number; status: string; id?: string; errors?: Array<{ field: string }> }> };
      assert.equal(result.created, 1);
      assert.deepEqual(result.results[1]!.errors!.map((e) => e.field).sort(), ['patients.1.contact.phone', 'patients.1.phoneNumber']);
      assert.deepEqual(result.results[2]!.errors!.map((e) => e.field), ['patients.2.contact.phone']);
      const stored = (await app.inject({ url: `/v2/patients/${result.results[0]!.id}`, headers })).json() as PatientV2Body;
      assert.equal(stored.contact.phone, '+13055550135');
      const unknownV1Row = await app.inject({ method: 'POST', url: '/v1/patients/import', headers: admin, payload: { mode: 'partial', patients: [newPatientV2({ contact: { phone: '+13055550138' } })] } });
      assert.equal((unknownV1Row.json() as { failed: number }).failed, 1, 'v1 rows stay v1: contact is an unknown field there');
    });

    test('/v2/openapi.json describes v2 with phoneNumber deprecated, and lints clean', async () => {
      const response = await app.inject({ url: '/v2/openapi.json' });
      assert.equal(response.statusCode, 200);
      const doc = response.json() as { info: { version: string }; servers: Array<{ url: string }>; paths: Record<string, Record<string, any>> };
      assert.equal(doc.info.version, '2.0.0-beta');
      assert.ok(doc.servers.some((s) => s.url === 'https://api.medspasync.com/v2'));
      for (const path of ['/patients', '/patients/{patientId}', '/patients/import']) assert.ok(doc.paths[path], path);
      const schema = doc.paths['/patients/{patientId}']!.get.responses['200'].content['application/json'].schema;
      assert.equal(schema.properties.phoneNumber.deprecated, true);
      assert.ok(schema.properties.contact);
      // The writes are documented in the v2 shape: contact accepted, phoneNumber accepted but deprecated.
      for (const [path, method] of [['/patients', 'post'], ['/patients/{patientId}', 'patch']] as const) {
        const operation = doc.paths[path]![method];
        const body = operation.requestBody.content['application/json'].schema;
        assert.equal(body.properties.phoneNumber.deprecated, true, `${method} ${path}`);
        assert.deepEqual(Object.keys(body.properties.contact.properties).sort(), ['email', 'phone'], `${method} ${path}`);
        const ok = operation.responses[method === 'post' ? '201' : '200'].content['application/json'].schema;
        assert.ok(ok.properties.contact, `${method} ${path} answers in the v2 shape`);
      }
      assert.ok(doc.paths['/patients/{patientId}']!.delete.responses['200'].content['application/json'].schema.properties.contact);
      const dir = mkdtempSync(join(tmpdir(), 'openapi-v2-'));
      writeFileSync(join(dir, 'openapi.json'), response.body);
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['node_modules/.bin/spectral', 'lint', join(dir, 'openapi.json'), '--ruleset', '.spectral.yaml', '--format', 'json', '--quiet'],
        { maxBuffer: 10_000_000 },
      ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
      const errors = (JSON.parse(stdout || '[]') as Array<{ severity: number }>).filter((f) => f.severity === 0);
      assert.deepEqual(errors, []);
    });
  });
}
