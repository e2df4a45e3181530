// Patients one at a time (blueprint 1.3): create, read, update, deactivate — the validation and
// normalisation rules, the duplicate rules, practice isolation, permissions and the audit trail.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { startTestApp } from '../helpers/app.js';
import { createTestPractice } from '../helpers/identity.js';
import { auditEventsFor, createPatient, errorOf, newPatient, storedPatientCount } from './helpers.js';

for (const target of databaseTargets()) {
  describe(`patients on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, { rateLimitEnabled: false });
    const practiceA = await createTestPractice(app, 'Spa A');
    const practiceB = await createTestPractice(app, 'Spa B');
    const admin = practiceA.users.ADMIN.headers;
    const post = (payload: unknown, headers = admin) => app.inject({ method: 'POST', url: '/v1/patients', headers, payload: payload as object });

    describe('create', () => {
      test('201 with the patient at the top level and a Location header', async () => {
        const response = await post({ firstName: 'Ana', lastName: 'García', dateOfBirth: '1990-02-03', email: 'ana@example.com' });
        assert.equal(response.statusCode, 201, response.body);
        const body = response.json();
        assert.match(body.id, /^[0-9a-f-]{36}$/);
        assert.equal(response.headers.location, `/v1/patients/${body.id}`);
        assert.equal(body.firstName, 'Ana');
        assert.equal(body.lastName, 'García');
        assert.equal(body.dateOfBirth, '1990-02-03');
        assert.equal(body.status, 'ACTIVE');
        assert.deepEqual(body.externalIds, {});
        assert.equal(body.deletedAt, null);
        assert.ok(Date.parse(body.createdAt));
      });

      test('timestamps are ISO 8601 in UTC with milliseconds, the stored instant truncated to the millisecond', async () => {
        const body = (await createPatient(app, admin)) as { id: string; createdAt: string; updatedAt: string };
        const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
        assert.match(body.createdAt, iso);
        assert.match(body.updatedAt, iso);
        const { rows } = await withSystem(db, (tx) =>
          tx.query<{ micros: string }>(`SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text AS micros FROM patients WHERE id = $1`, [body.id]),
        );
        const stored = BigInt(rows[0]!.micros);
        assert.equal(BigInt(Date.parse(body.createdAt)) * 1000n, stored - (stored % 1000n));
      });

      test('normalises email to lower case and phone to E.164, and keeps every field', async () => {
        const body = await createPatient(app, admin, {
          firstName: '  Zoë ',
          lastName: "O'Brien-Smith",
          email: 'Zoe.OBrien@Example.COM',
          phoneNumber: '(212) 555-0147',
          gender: 'female',
          address: { line1: '1 Main St', city: 'New York', state: 'NY', postalCode: '10001', country: 'us' },
          status: 'VIP',
          notes: 'Prefers afternoon appointments',
          externalIds: { alle: 'A-1001', aspire: '77001' },
        });
        assert.equal(body.firstName, 'Zoë');
        assert.equal(body.email, 'zoe.obrien@example.com');
        assert.equal(body.phoneNumber, '+12125550147');
        assert.deepEqual(body.address, { line1: '1 Main St', city: 'New York', state: 'NY', postalCode: '10001', country: 'US' });
        assert.equal(body.status, 'VIP');
        assert.deepEqual(body.externalIds, { alle: 'A-1001', aspire: '77001' });
        const read = await app.inject({ url: `/v1/patients/${body.id}`, headers: admin });
        assert.deepEqual(read.json(), body);
      });

      test('reads a national number in the address country', async () => {
        const body = await createPatient(app, admin, newPatient({ phoneNumber: '020 7946 0958', address: { country: 'GB' } }));
        assert.equal(body.phoneNumber, '+442079460958');
      });

      test('accepts names in any script, with apostrophes, hyphens and spaces', async () => {
        for (const [firstName, lastName] of [['Søren', 'Kierkegård'], ['美咲', '佐藤'], ['José María', 'de la Cruz'], ['D’Arcy', 'Al-Hassan'], ['Ђорђе', 'Ђуричић']]) {
          const body = await createPatient(app, admin, newPatient({ firstName, lastName }));
          assert.equal(body.firstName, firstName);
          assert.equal(body.lastName, lastName);
        }
      });

      test('400 with one detail per bad field, and nothing written', async () => {
        const before = await storedPatientCount(db, practiceA.id);
        const response = await post({
          firstName: 'J4ne',
          lastName: '',
          dateOfBirth: '1990-02-30',
          email: 'not-an-email',
          status: 'DECEASED',
          favouriteColour: 'blue',
        });
        assert.equal(response.statusCode, 400);
        const error = errorOf(response);
        assert.equal(error.code, 'VALIDATION_ERROR');
        const fields = new Set(error.details.map((d) => d.field));
        for (const field of ['firstName', 'lastName', 'dateOfBirth', 'email', 'status', 'favouriteColour']) {
          assert.ok(fields.has(field), `expected a detail for ${field}: ${JSON.stringify(error.details)}`);
        }
        assert.equal(await storedPatientCount(db, practiceA.id), before);
      });

      test('400 for a missing name, a bad or blank phone number or email, an impossible or future date of birth', async () => {
        const cases: Array<[Record<string, unknown>, string]> = [
          [{ lastName: 'Doe' }, 'firstName'],
          [newPatient({ phoneNumber: '555' }), 'phoneNumber'],
          [newPatient({ phoneNumber: '+1 212 555 0123 ext. 5' }), 'phoneNumber'],
          // A blank number is not a number, as a blank email is not an email: null means none.
          [newPatient({ phoneNumber: '' }), 'phoneNumber'],
          [newPatient({ phoneNumber: '   ' }), 'phoneNumber'],
          [newPatient({ email: '' }), 'email'],
          [newPatient({ dateOfBirth: '2999-01-01' }), 'dateOfBirth'],
          [newPatient({ dateOfBirth: '1850-01-01' }), 'dateOfBirth'],
          [newPatient({ email: 'someone@localhost' }), 'email'],
          [newPatient({ firstName: "'-'" }), 'firstName'],
          [newPatient({ externalIds: { 'bad key!': 'x' } }), 'externalIds.bad key!'],
          [newPatient({ address: { line1: 'x', planet: 'Mars' } }), 'address.planet'],
          [newPatient({ age: 30 }), 'age'],
        ];
        for (const [payload, field] of cases) {
          const response = await post(payload);
          assert.equal(response.statusCode, 400, `${JSON.stringify(payload)} → ${response.body}`);
          const fields = errorOf(response).details.map((d) => d.field);
          assert.ok(fields.includes(field), `expected ${field} in ${JSON.stringify(fields)}`);
        }
      });

      test('wrong types are a 400, not a coercion into something stored', async () => {
        for (const payload of [{ firstName: ['Jane'], lastName: 'Doe' }, { firstName: true, lastName: 'Doe' }, { firstName: 'Jane', lastName: 'Doe', email: ['a@example.com'] }, { firstName: 'Jane', lastName: 'Doe', status: ['VIP'] }, { firstName: { $ne: null }, lastName: 'Doe' }, { firstName: 'Jane', lastName: 'Doe', address: 'Main St' }, [1, 2]]) {
          const response = await post(payload);
          assert.equal(response.statusCode, 400, response.body);
        }
      });

      test('a 1 MB name is refused with 400 and not stored', async () => {
        const before = await storedPatientCount(db, practiceA.id);
        const response = await post(newPatient({ firstName: 'a'.repeat(1_000_000) }));
        assert.equal(response.statusCode, 400);
        assert.deepEqual(errorOf(response).details.map((d) => d.field), ['firstName']);
        assert.equal(await storedPatientCount(db, practiceA.id), before);
      });

      test('a body over the 1 MiB limit is a 413 envelope', async () => {
        const response = await post(newPatient({ notes: 'n'.repeat(1_100_000) }));
        assert.equal(response.statusCode, 413);
        assert.equal(errorOf(response).code, 'PAYLOAD_TOO_LARGE');
      });

      test('SQL and script fragments in names are refused, never executed', async () => {
        const before = await storedPatientCount(db, practiceA.id);
        for (const firstName of ["Robert'); DROP TABLE patients;--", '<script>alert(1)</script>', "' OR '1'='1", 'x"; SELECT pg_sleep(5); --']) {
          const response = await post(newPatient({ firstName }));
          assert.equal(response.statusCode, 400, firstName);
          assert.deepEqual(errorOf(response).details.map((d) => d.field), ['firstName']);
        }
        assert.equal(await storedPatientCount(db, practiceA.id), before);
      });

      test('an apostrophe-only SQL look-alike that is a legal name is stored verbatim, table intact', async () => {
        const body = await createPatient(app, admin, newPatient({ firstName: "x' or 'x", lastName: "D'Angelo" }));
        const read = await app.inject({ url: `/v1/patients/${body.id}`, headers: admin });
        assert.equal(read.json().firstName, "x' or 'x");
        assert.ok((await storedPatientCount(db, practiceA.id)) > 1);
      });

      test('409 PATIENT_EXISTS naming the existing patient for the same email, any case', async () => {
        const existing = await createPatient(app, admin, newPatient({ email: 'dup@example.com' }));
        const response = await post(newPatient({ email: 'DUP@Example.com' }));
        assert.equal(response.statusCode, 409);
        const error = errorOf(response);
        assert.equal(error.code, 'PATIENT_EXISTS');
        assert.match(error.message, new RegExp(existing.id));
        assert.deepEqual(error.details, [{ field: 'email', message: `already used by patient ${existing.id}` }]);
      });

      test('409 PATIENT_EXISTS for the same name and date of birth, whatever the case', async () => {
        const existing = await createPatient(app, admin, newPatient({ firstName: 'Maria', lastName: 'Lopez', dateOfBirth: '1970-07-07', email: null }));
        const response = await post({ firstName: 'MARIA', lastName: 'lopez', dateOfBirth: '1970-07-07' });
        assert.equal(response.statusCode, 409);
        assert.equal(errorOf(response).code, 'PATIENT_EXISTS');
        assert.match(errorOf(response).message, new RegExp(existing.id));
        // Same name, another date of birth: a different person.
        await createPatient(app, admin, { firstName: 'Maria', lastName: 'Lopez', dateOfBirth: '1971-07-07' });
      });

      test('concurrent creates of one patient: exactly one 201, the others 409 naming it', async () => {
        const body = newPatient({ email: 'race@example.com' });
        const responses = await Promise.all(Array.from({ length: 8 }, () => post(body)));
        const created = responses.filter((r) => r.statusCode === 201);
        assert.equal(created.length, 1, responses.map((r) => r.statusCode).join(','));
        const id = created[0]!.json().id;
        for (const r of responses.filter((r) => r.statusCode !== 201)) {
          assert.equal(r.statusCode, 409, r.body);
          assert.match(errorOf(r).message, new RegExp(id));
        }
      });
    });

    describe('read', () => {
      test('200 for the practice’s own patient', async () => {
        const { id } = await createPatient(app, admin);
        const response = await app.inject({ url: `/v1/patients/${id}`, headers: admin });
        assert.equal(response.statusCode, 200);
        assert.equal(response.json().id, id);
      });

      test('404 for a malformed id, never 400', async () => {
        for (const id of ['not-a-uuid', '1', "1' OR '1'='1", '00000000-0000-0000-0000-00000000000g']) {
          const response = await app.inject({ url: `/v1/patients/${encodeURIComponent(id)}`, headers: admin });
          assert.equal(response.statusCode, 404, `${id} → ${response.body}`);
          assert.equal(errorOf(response).code, 'NOT_FOUND');
        }
      });

      test('404 for an unknown id', async () => {
        const response = await app.inject({ url: '/v1/patients/7d0e4a8e-1f7c-4a62-9a38-5d7f9b0c1e2f', headers: admin });
        assert.equal(response.statusCode, 404);
      });
    });

    describe('practice isolation', () => {
      test('practice A gets 404 for practice B’s patient on GET, PATCH and DELETE, and B’s record is untouched', async () => {
        const theirs = await createPatient(app, practiceB.users.ADMIN.headers, newPatient({ firstName: 'Bea' }));
        const url = `/v1/patients/${theirs.id}`;
        const get = await app.inject({ url, headers: admin });
        const patch = await app.inject({ method: 'PATCH', url, headers: admin, payload: { firstName: 'Hacked' } });
        const del = await app.inject({ method: 'DELETE', url, headers: admin });
        for (const response of [get, patch, del]) {
          assert.equal(response.statusCode, 404, response.body);
          assert.equal(errorOf(response).code, 'NOT_FOUND');
        }
        const still = await app.inject({ url, headers: practiceB.users.ADMIN.headers });
        assert.equal(still.json().firstName, 'Bea');
        assert.equal(still.json().status, 'ACTIVE');
      });

      test('practice A’s list never contains practice B’s patients', async () => {
        const theirs = await createPatient(app, practiceB.users.ADMIN.headers, newPatient({ lastName: 'Isolated' }));
        const list = await app.inject({ url: '/v1/patients?q=Isolated&limit=100', headers: admin });
        assert.equal(list.statusCode, 200);
        assert.ok(!list.json().data.some((p: { id: string }) => p.id === theirs.id));
      });

      test('the same email may exist in two practices', async () => {
        await createPatient(app, admin, newPatient({ email: 'shared@example.com' }));
        await createPatient(app, practiceB.users.ADMIN.headers, newPatient({ email: 'shared@example.com' }));
      });

      test('row-level security hides patients from an unscoped query of another practice', async () => {
        await createPatient(app, practiceB.users.ADMIN.headers);
        const { withPractice } = await import('../../src/db/scope.js');
        const { rows } = await withPractice(db, practiceA.id, (tx) =>
          tx.query('SELECT 1 FROM patients WHERE practice_id = $1', [practiceB.id]),
        );
        assert.equal(rows.length, 0);
      });
    });

    describe('update', () => {
      test('PATCH changes only the given fields, with the same normalisation', async () => {
        const created = await createPatient(app, admin, newPatient({ notes: 'keep me' }));
        const response = await app.inject({
          method: 'PATCH',
          url: `/v1/patients/${created.id}`,
          headers: admin,
          payload: { email: 'New.Address@Example.com', phoneNumber: '212 555 0199', status: 'VIP' },
        });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json();
        assert.equal(body.email, 'new.address@example.com');
        assert.equal(body.phoneNumber, '+12125550199');
        assert.equal(body.status, 'VIP');
        assert.equal(body.notes, 'keep me');
        assert.equal(body.firstName, created.firstName);
        assert.ok(Date.parse(body.updatedAt) >= Date.parse(String(created.updatedAt)));
      });

      test('PATCH null clears an optional field; an empty body or null name is a 400', async () => {
        const created = await createPatient(app, admin);
        const url = `/v1/patients/${created.id}`;
        const cleared = await app.inject({ method: 'PATCH', url, headers: admin, payload: { email: null, phoneNumber: null } });
        assert.equal(cleared.statusCode, 200, cleared.body);
        assert.equal(cleared.json().email, null);
        assert.equal(cleared.json().phoneNumber, null);
        assert.equal((await app.inject({ method: 'PATCH', url, headers: admin, payload: {} })).statusCode, 400);
        assert.equal((await app.inject({ method: 'PATCH', url, headers: admin, payload: { firstName: null } })).statusCode, 400);
        assert.equal((await app.inject({ method: 'PATCH', url, headers: admin, payload: { id: 'x' } })).statusCode, 400);
      });

      test('PATCH into another patient’s email or name and date of birth is a 409 naming them, nothing changed', async () => {
        const first = await createPatient(app, admin, newPatient({ email: 'first@example.com' }));
        const second = await createPatient(app, admin);
        const url = `/v1/patients/${second.id}`;
        const byEmail = await app.inject({ method: 'PATCH', url, headers: admin, payload: { email: 'FIRST@example.com' } });
        assert.equal(byEmail.statusCode, 409);
        assert.match(errorOf(byEmail).message, new RegExp(first.id));
        const byName = await app.inject({
          method: 'PATCH',
          url,
          headers: admin,
          payload: { firstName: first.firstName, lastName: first.lastName, dateOfBirth: first.dateOfBirth },
        });
        assert.equal(byName.statusCode, 409);
        assert.match(errorOf(byName).message, new RegExp(first.id));
        const unchanged = await app.inject({ url, headers: admin });
        assert.equal(unchanged.json().email, second.email);
      });

      test('PATCH keeping its own email is not a conflict with itself', async () => {
        const created = await createPatient(app, admin);
        const response = await app.inject({ method: 'PATCH', url: `/v1/patients/${created.id}`, headers: admin, payload: { email: created.email, notes: 'x' } });
        assert.equal(response.statusCode, 200, response.body);
      });

      test('PATCH with an invalid field is a 400 and changes nothing', async () => {
        const created = await createPatient(app, admin);
        const url = `/v1/patients/${created.id}`;
        const response = await app.inject({ method: 'PATCH', url, headers: admin, payload: { notes: 'changed', email: 'broken' } });
        assert.equal(response.statusCode, 400);
        assert.equal((await app.inject({ url, headers: admin })).json().notes, null);
      });
    });

    describe('deactivate', () => {
      test('DELETE sets INACTIVE and deletedAt, and the record is kept', async () => {
        const created = await createPatient(app, admin);
        const url = `/v1/patients/${created.id}`;
        const response = await app.inject({ method: 'DELETE', url, headers: admin });
        assert.equal(response.statusCode, 200, response.body);
        assert.equal(response.json().status, 'INACTIVE');
        assert.match(response.json().deletedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
        const read = await app.inject({ url, headers: admin });
        assert.equal(read.statusCode, 200);
        assert.equal(read.json().status, 'INACTIVE');
        const { rows } = await withSystem(db, (tx) => tx.query('SELECT 1 FROM patients WHERE id = $1', [created.id]));
        assert.equal(rows.length, 1);
      });

      test('a deactivated patient no longer blocks a new record with the same email; reactivating it then conflicts', async () => {
        const old = await createPatient(app, admin, newPatient({ email: 'returning@example.com' }));
        await app.inject({ method: 'DELETE', url: `/v1/patients/${old.id}`, headers: admin });
        const fresh = await createPatient(app, admin, newPatient({ email: 'returning@example.com' }));
        const reactivate = await app.inject({ method: 'PATCH', url: `/v1/patients/${old.id}`, headers: admin, payload: { status: 'ACTIVE' } });
        assert.equal(reactivate.statusCode, 409);
        assert.match(errorOf(reactivate).message, new RegExp(fresh.id));
      });

      test('PATCH status ACTIVE reactivates a deactivated patient and clears deletedAt', async () => {
        const created = await createPatient(app, admin);
        const url = `/v1/patients/${created.id}`;
        await app.inject({ method: 'DELETE', url, headers: admin });
        const response = await app.inject({ method: 'PATCH', url, headers: admin, payload: { status: 'ACTIVE' } });
        assert.equal(response.statusCode, 200);
        assert.equal(response.json().deletedAt, null);
      });

      test('the application role cannot erase a patient row even by SQL', async () => {
        const created = await createPatient(app, admin);
        const { withPractice } = await import('../../src/db/scope.js');
        await assert.rejects(
          withPractice(db, practiceA.id, (tx) => tx.query('DELETE FROM patients WHERE id = $1', [created.id])),
          /permission denied/,
        );
      });
    });

    describe('permissions (blueprint 2.2)', () => {
      test('STAFF and PRACTITIONER can read but not create, change or delete patients', async () => {
        const created = await createPatient(app, admin);
        for (const role of ['STAFF', 'PRACTITIONER'] as const) {
          const headers = practiceA.users[role].headers;
          assert.equal((await app.inject({ url: '/v1/patients', headers })).statusCode, 200);
          assert.equal((await app.inject({ url: `/v1/patients/${created.id}`, headers })).statusCode, 200);
          const denied = [
            await post(newPatient(), headers),
            await app.inject({ method: 'PATCH', url: `/v1/patients/${created.id}`, headers, payload: { notes: 'x' } }),
            await app.inject({ method: 'DELETE', url: `/v1/patients/${created.id}`, headers }),
            await app.inject({ method: 'POST', url: '/v1/patients/import', headers, payload: { patients: [newPatient()] } }),
          ];
          for (const response of denied) {
            assert.equal(response.statusCode, 403, `${role}: ${response.body}`);
            assert.equal(errorOf(response).code, 'FORBIDDEN');
          }
        }
      });

      test('MANAGER (read:*) can read patients but not write them', async () => {
        const headers = practiceA.users.MANAGER.headers;
        assert.equal((await app.inject({ url: '/v1/patients', headers })).statusCode, 200);
        assert.equal((await post(newPatient(), headers)).statusCode, 403);
      });

      test('without credentials every patient route is a 401', async () => {
        for (const [method, url] of [['GET', '/v1/patients'], ['POST', '/v1/patients'], ['GET', '/v1/patients/x'], ['PATCH', '/v1/patients/x'], ['DELETE', '/v1/patients/x'], ['POST', '/v1/patients/import']] as const) {
          const response = await app.inject({ method, url, payload: method === 'GET' || method === 'DELETE' ? undefined : {} });
          assert.equal(response.statusCode, 401, `${method} ${url}`);
        }
      });
    });

    describe('audit (issue 4 item 6)', () => {
      test('create, read, update and deactivate each write an event naming the patient, without PHI', async () => {
        const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: newPatient({ lastName: 'Audited', email: 'audited@example.com' }) });
        const id = created.json().id as string;
        const read = await app.inject({ url: `/v1/patients/${id}`, headers: admin });
        const patched = await app.inject({ method: 'PATCH', url: `/v1/patients/${id}`, headers: admin, payload: { notes: 'secret note' } });
        const deleted = await app.inject({ method: 'DELETE', url: `/v1/patients/${id}`, headers: admin });
        const expected: Array<[typeof created, string]> = [[created, 'patient.create'], [read, 'patient.read'], [patched, 'patient.update'], [deleted, 'patient.deactivate']];
        for (const [response, action] of expected) {
          const events = await auditEventsFor(db, String(response.headers['x-request-id']));
          assert.equal(events.length, 1, action);
          assert.equal(events[0]!.action, action);
          assert.equal(events[0]!.outcome, 'success');
          assert.equal(events[0]!.actor_id, practiceA.users.ADMIN.id);
          assert.deepEqual(events[0]!.resource_ids, [id]);
          const text = JSON.stringify(events[0]);
          for (const phi of ['Audited', 'audited@example.com', 'secret note']) assert.ok(!text.includes(phi), `${action} leaks ${phi}`);
        }
      });

      test('a patient is never returned when the read’s audit event cannot be written', async () => {
        const created = await createPatient(app, admin, newPatient({ lastName: 'Unaudited' }));
        // The audit writer's role loses its right to insert (this test database only).
        await db.exec('REVOKE INSERT ON audit_events FROM medspa_system');
        let response;
        try {
          response = await app.inject({ url: `/v1/patients/${created.id}`, headers: admin });
        } finally {
          await db.exec('GRANT INSERT ON audit_events TO medspa_system');
        }
        assert.equal(response.statusCode, 500);
        assert.equal(errorOf(response).code, 'INTERNAL_ERROR');
        assert.doesNotMatch(response.body, /Unaudited/);
        assert.equal((await auditEventsFor(db, String(response.headers['x-request-id']))).length, 0);
        assert.equal((await app.inject({ url: `/v1/patients/${created.id}`, headers: admin })).statusCode, 200);
      });

      test('a read of another practice’s patient is recorded as a failure naming the id asked for', async () => {
        const other = await createPatient(app, practiceB.users.ADMIN.headers);
        const response = await app.inject({ url: `/v1/patients/${other.id}`, headers: admin });
        assert.equal(response.statusCode, 404);
        const events = await auditEventsFor(db, String(response.headers['x-request-id']));
        assert.deepEqual(
          events.map((event) => [event.action, event.outcome, event.resource_ids]),
          [['patient.read', 'failure', [other.id]]],
        );
      });

      test('a list read records exactly the ids it returned, not the search text', async () => {
        await createPatient(app, admin, newPatient({ lastName: 'Listedname' }));
        const response = await app.inject({ url: '/v1/patients?q=listedname&limit=5', headers: admin });
        const ids = response.json().data.map((p: { id: string }) => p.id);
        assert.ok(ids.length >= 1);
        const [event] = await auditEventsFor(db, String(response.headers['x-request-id']));
        assert.equal(event!.action, 'patient.list');
        assert.deepEqual(event!.resource_ids, ids);
        assert.ok(!JSON.stringify(event).toLowerCase().includes('listedname'));
      });

      test('a refused duplicate and a probe of another practice’s id are recorded as failures', async () => {
        const existing = await createPatient(app, admin, newPatient({ email: 'probe@example.com' }));
        const dup = await post(newPatient({ email: 'probe@example.com' }));
        const [dupEvent] = await auditEventsFor(db, String(dup.headers['x-request-id']));
        assert.equal(dupEvent!.outcome, 'failure');
        assert.deepEqual(dupEvent!.resource_ids, [existing.id]);
        const theirs = await createPatient(app, practiceB.users.ADMIN.headers);
        const probe = await app.inject({ url: `/v1/patients/${theirs.id}`, headers: admin });
        const [probeEvent] = await auditEventsFor(db, String(probe.headers['x-request-id']));
        assert.equal(probeEvent!.outcome, 'failure');
        assert.equal(probeEvent!.action, 'patient.read');
      });

      test('a request refused by validation writes neither a patient nor an event', async () => {
        const before = await storedPatientCount(db, practiceA.id);
        const response = await post({ firstName: '<b>', lastName: 'x' });
        assert.equal(response.statusCode, 400);
        assert.equal((await auditEventsFor(db, String(response.headers['x-request-id']))).length, 0);
        assert.equal(await storedPatientCount(db, practiceA.id), before);
      });
    });
  });
}
