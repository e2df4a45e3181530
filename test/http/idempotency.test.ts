// Idempotency-Key (issue 4 item 5): a client retrying after a timeout must get the first response
// again and never a second booking, on every database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { canonicalJson, isIdempotentRoute, purgeExpiredKeys, requestFingerprint } from '../../src/http/idempotency.js';
import { encryptPlaintextPatients } from '../../src/patients/encrypt-existing.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { countAppointments, createService, insertPatient, insertPatients, type ErrorBody } from '../appointments/scheduling-helpers.js';

describe('request fingerprint', () => {
  test('ignores key order, not values', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, 2], c: null } }), canonicalJson({ a: { c: null, d: [1, 2] }, b: 1 }));
    assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
    assert.notEqual(requestFingerprint('POST', '/v1/a', { x: 1 }), requestFingerprint('POST', '/v1/b', { x: 1 }));
  });

  test('data writes take part by default; credential and admin routes only when they opt in (secrets are never stored)', () => {
    assert.equal(isIdempotentRoute({ permission: 'write:patients' }), true);
    assert.equal(isIdempotentRoute({ permission: 'write:appointments', idempotent: 'transactional' }), true);
    assert.equal(isIdempotentRoute({ permission: 'write:patients', idempotent: false }), false);
    assert.equal(isIdempotentRoute({ permission: 'admin:api-keys' }), false);
    assert.equal(isIdempotentRoute({}), false);
    assert.equal(isIdempotentRoute({ permission: 'admin:users', idempotent: true }), true);
  });
});

for (const target of databaseTargets()) {
  describe(`idempotency keys on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const a = await createTestPractice(app, 'Spa A');
    const b = await createTestPractice(app, 'Spa B');
    const service = await createService(app, a.users.MANAGER.headers, { durationMinutes: 30 });
    let minute = 0;
    /** A fresh booking body: its own patient and its own slot. */
    async function bookingBody() {
      minute += 30;
      const start = new Date(Date.parse('2027-10-01T08:00:00Z') + minute * 60_000).toISOString();
      return { patientId: await insertPatient(db, a.id), practitionerId: a.users.PRACTITIONER.id, serviceId: service.id, startTime: start };
    }
    const post = (key: string | undefined, payload: unknown, headers = a.users.STAFF.headers, url = '/v1/appointments') =>
      app.inject({ method: 'POST', url, headers: { ...headers, ...(key === undefined ? {} : { 'idempotency-key': key }) }, payload: payload as object });

    async function appointmentsOf(patientId: string) {
      return withPractice(db, a.id, async (tx) => (await tx.query('SELECT id FROM appointments WHERE patient_id = $1', [patientId])).rows.length);
    }

    test('a retried booking returns the same appointment, status and Location, and creates one row', async () => {
      const body = await bookingBody();
      const first = await post('retry-1', body);
      assert.equal(first.statusCode, 201, first.body);
      const retry = await post('retry-1', { ...body });
      assert.equal(retry.statusCode, 201);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.json().id, first.json().id);
      assert.equal(retry.headers.location, first.headers.location);
      assert.deepEqual(retry.json(), first.json());
      assert.equal(await appointmentsOf(body.patientId), 1);
    });

    test('the same body with keys in another order is the same request', async () => {
      const body = await bookingBody();
      const first = await post('order-1', body);
      const reordered = Object.fromEntries(Object.entries(body).reverse());
      const retry = await post('order-1', reordered);
      assert.equal(retry.json().id, first.json().id);
    });

    test('the same key with a different body is 422 IDEMPOTENCY_KEY_REUSED and does nothing', async () => {
      const body = await bookingBody();
      assert.equal((await post('reuse-1', body)).statusCode, 201);
      const other = await bookingBody();
      const response = await post('reuse-1', other);
      assert.equal(response.statusCode, 422);
      assert.equal((response.json() as ErrorBody).error.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.equal(await appointmentsOf(other.patientId), 0);
    });

    test('the same key on another endpoint is 422 too', async () => {
      assert.equal((await post('cross-1', await bookingBody())).statusCode, 201);
      const response = await post('cross-1', { name: 'Cross', durationMinutes: 10, priceCents: 1 }, a.users.MANAGER.headers, '/v1/services');
      assert.equal(response.statusCode, 422);
    });

    test('a route that stores its response after the handler (services) replays it too, and creates one row', async () => {
      const payload = { name: 'Replayed Peel', durationMinutes: 20, priceCents: 5_000 };
      const first = await post('svc-1', payload, a.users.MANAGER.headers, '/v1/services');
      assert.equal(first.statusCode, 201, first.body);
      const retry = await post('svc-1', payload, a.users.MANAGER.headers, '/v1/services');
      assert.equal(retry.statusCode, 201, retry.body);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.headers.location, first.headers.location);
      assert.deepEqual(retry.json(), first.json());
      const { rows } = await withPractice(db, a.id, (tx) => tx.query("SELECT 1 FROM services WHERE name = 'Replayed Peel'"));
      assert.equal(rows.length, 1);
    });

    test('every POST accepts the key: a retried reconciliation replays the stored run instead of running again', async () => {
      const patient = { firstName: 'Retry', lastName: 'Later', dateOfBirth: '1980-02-03', email: 'retry.later@example.test' };
      assert.equal((await app.inject({ method: 'POST', url: '/v1/patients', headers: a.users.ADMIN.headers, payload: patient })).statusCode, 201);
      // The booking tests' patients were inserted with SQL in plain text: seal them, as the first
      // start after migration 015 does, before the reconciliation reads every patient's PHI.
      await encryptPlaintextPatients(app.db, app.keyring);
      const payload = { data: [{ 'First Name': 'Retry', 'Last Name': 'Later', DOB: '1980-02-03', Email: 'retry.later@example.test' }] };
      const runs = () => withPractice(db, a.id, async (tx) => (await tx.query('SELECT id FROM reconciliation_runs')).rows.length);
      const before = await runs();
      const first = await post('recon-1', payload, a.users.STAFF.headers, '/v1/ai/reconcile');
      assert.equal(first.statusCode, 200, first.body);
      const retry = await post('recon-1', payload, a.users.STAFF.headers, '/v1/ai/reconcile');
      assert.equal(retry.statusCode, 200, retry.body);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.body, first.body);
      assert.equal(await runs(), before + 1);
      // The replay shows the same matches again: its audit event names them, as the run's did.
      const matched = [...new Set((first.json() as { matches: Array<{ entityId: string }> }).matches.map((m) => m.entityId))].sort();
      assert.equal(matched.length, 1, 'the export row matched its patient');
      const replays = await withPractice(db, a.id, (tx) =>
        tx.query<{ resource_ids: string[] }>("SELECT resource_ids FROM audit_events WHERE action = 'idempotency.replay' AND request_id = $1", [retry.headers['x-request-id']]),
      );
      assert.deepEqual(replays.rows.map((row) => [...row.resource_ids].sort()), [matched]);
      const other = await post('recon-1', { ...payload, confidence: 0.5 }, a.users.STAFF.headers, '/v1/ai/reconcile');
      assert.equal(other.statusCode, 422, other.body);
      assert.equal(await runs(), before + 1);
    });

    test('a stored response shows no PHI to whoever reads the table: sealed, and still replayed', async () => {
      const patient = { firstName: 'Sealed', lastName: 'Zanzibarova', dateOfBirth: '1979-05-06', email: 'sealed.zanzibarova@example.test' };
      const first = await post('sealed-1', patient, a.users.ADMIN.headers, '/v1/patients');
      assert.equal(first.statusCode, 201, first.body);
      const { rows } = await withPractice(db, a.id, (tx) =>
        tx.query<{ response_body: string }>("SELECT response_body FROM idempotency_keys WHERE key = 'sealed-1'"),
      );
      assert.equal(rows.length, 1);
      assert.match(rows[0]!.response_body, /^v1\./);
      for (const value of [patient.lastName, patient.email, patient.dateOfBirth]) assert.ok(!rows[0]!.response_body.includes(value), value);
      const retry = await post('sealed-1', patient, a.users.ADMIN.headers, '/v1/patients');
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.body, first.body);
    });

    test('keys are per practice: practice B’s identical key is its own request', async () => {
      const bService = await createService(app, b.users.MANAGER.headers);
      const payload = { name: 'Same key elsewhere', durationMinutes: 10, priceCents: 1 };
      const mine = await post('shared-key', { name: 'Mine', durationMinutes: 10, priceCents: 1 }, a.users.MANAGER.headers, '/v1/services');
      const theirs = await post('shared-key', payload, b.users.MANAGER.headers, '/v1/services');
      assert.equal(mine.statusCode, 201);
      assert.equal(theirs.statusCode, 201);
      assert.equal(theirs.headers['idempotent-replayed'], undefined);
      assert.notEqual(theirs.json().id, mine.json().id);
      assert.ok(bService.id);
    });

    test('a failed request releases its key: fixing the cause and retrying with it books once', async () => {
      const retired = await createService(app, a.users.MANAGER.headers, { active: false, durationMinutes: 30 });
      const body = { ...(await bookingBody()), serviceId: retired.id };
      const refused = await post('fix-then-retry', body);
      assert.equal(refused.statusCode, 422);
      await app.inject({ method: 'PATCH', url: `/v1/services/${retired.id}`, headers: a.users.MANAGER.headers, payload: { active: true } });
      const retried = await post('fix-then-retry', body);
      assert.equal(retried.statusCode, 201, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], undefined);
      assert.equal((await post('fix-then-retry', body)).headers['idempotent-replayed'], 'true');
    });

    test('keys expire after 24 hours, then may be used again', async () => {
      const first = await post('expiring', await bookingBody());
      assert.equal(first.statusCode, 201);
      const { rows } = await withPractice(db, a.id, (tx) =>
        tx.query<{ hours: number }>(
          "SELECT round(extract(epoch FROM expires_at - created_at) / 3600)::int AS hours FROM idempotency_keys WHERE key = 'expiring'",
        ),
      );
      assert.equal(rows[0]!.hours, 24);
      await withPractice(db, a.id, (tx) =>
        tx.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'expiring'"),
      );
      const later = await post('expiring', await bookingBody());
      assert.equal(later.statusCode, 201);
      assert.notEqual(later.json().id, first.json().id);
    });

    test('the sweep deletes expired keys of every practice, and only those', async () => {
      await post('sweep-live', await bookingBody());
      await post('sweep-old', await bookingBody());
      await withPractice(db, a.id, (tx) => tx.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 minute' WHERE key = 'sweep-old'"));
      assert.ok((await purgeExpiredKeys(db)) >= 1);
      const { rows } = await withPractice(db, a.id, (tx) =>
        tx.query<{ key: string }>("SELECT key FROM idempotency_keys WHERE key LIKE 'sweep-%' ORDER BY key"),
      );
      assert.deepEqual(rows.map((r) => r.key), ['sweep-live']);
    });

    test('concurrent duplicates never both execute: one booking, the rest replay it or are told to retry (409)', async () => {
      const body = await bookingBody();
      const responses = await Promise.all(Array.from({ length: 10 }, () => post('burst-1', body)));
      const ids = new Set<string>();
      for (const response of responses) {
        if (response.statusCode === 201) ids.add(response.json().id);
        else {
          assert.equal(response.statusCode, 409, response.body);
          assert.equal((response.json() as ErrorBody).error.code, 'IDEMPOTENCY_IN_PROGRESS');
          assert.equal(response.headers['retry-after'], '1');
        }
      }
      assert.equal(ids.size, 1);
      assert.equal(await appointmentsOf(body.patientId), 1);
      const later = await post('burst-1', body);
      assert.equal(later.statusCode, 201);
      assert.ok(ids.has(later.json().id));
    });

    test('another user of the practice reusing a key gets 422, never the first caller’s response', async () => {
      const body = await bookingBody();
      const first = await post('shared-key-1', body);
      assert.equal(first.statusCode, 201, first.body);
      const other = await post('shared-key-1', body, a.users.PRACTITIONER.headers);
      assert.equal(other.statusCode, 422);
      assert.equal((other.json() as ErrorBody).error.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.ok(!other.body.includes((first.json() as { id: string }).id));
    });

    test('a booking claim abandoned by a crashed server is taken over once its lock lapses, and books once', async () => {
      const body = await bookingBody();
      const hash = requestFingerprint('POST', '/v1/appointments', body, `user:${a.users.STAFF.id}`);
      await withPractice(db, a.id, (tx) =>
        tx.query(
          `INSERT INTO idempotency_keys (practice_id, key, request_hash, method, path, state, claim_token, locked_until, expires_at)
           VALUES ($1, 'crashed-1', $2, 'POST', '/v1/appointments', 'in_progress', gen_random_uuid(), now() - interval '1 second', now() + interval '1 day')`,
          [a.id, hash],
        ),
      );
      const response = await post('crashed-1', body);
      assert.equal(response.statusCode, 201, response.body);
      assert.equal(await appointmentsOf(body.patientId), 1);
    });

    test('a booking claim still locked is 409 IDEMPOTENCY_IN_PROGRESS, and nothing is booked', async () => {
      const body = await bookingBody();
      const hash = requestFingerprint('POST', '/v1/appointments', body, `user:${a.users.STAFF.id}`);
      await withPractice(db, a.id, (tx) =>
        tx.query(
          `INSERT INTO idempotency_keys (practice_id, key, request_hash, method, path, state, claim_token, locked_until, expires_at)
           VALUES ($1, 'running-1', $2, 'POST', '/v1/appointments', 'in_progress', gen_random_uuid(), now() + interval '1 minute', now() + interval '1 day')`,
          [a.id, hash],
        ),
      );
      const response = await post('running-1', body);
      assert.equal(response.statusCode, 409);
      assert.equal((response.json() as ErrorBody).error.code, 'IDEMPOTENCY_IN_PROGRESS');
      assert.equal(await appointmentsOf(body.patientId), 0);
    });

    test('a claim of a non-transactional route is never taken over: a retry is refused, not rerun', async () => {
      const payload = { name: 'Maybe created', durationMinutes: 10, priceCents: 1, active: true };
      const hash = requestFingerprint('POST', '/v1/services', payload, `user:${a.users.MANAGER.id}`);
      await withPractice(db, a.id, (tx) =>
        tx.query(
          `INSERT INTO idempotency_keys (practice_id, key, request_hash, method, path, state, claim_token, locked_until, expires_at)
           VALUES ($1, 'crashed-2', $2, 'POST', '/v1/services', 'in_progress', gen_random_uuid(), now() - interval '1 hour', now() + interval '1 day')`,
          [a.id, hash],
        ),
      );
      const response = await post('crashed-2', payload, a.users.MANAGER.headers, '/v1/services');
      assert.equal(response.statusCode, 409);
    });

    test('a malformed key is 400; no key means no idempotency', async () => {
      for (const key of ['x'.repeat(256), 'has space', 'ünïcode']) {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/appointments',
          headers: { ...a.users.STAFF.headers, 'idempotency-key': Buffer.from(key, 'utf8').toString('latin1') },
          payload: await bookingBody(),
        });
        assert.equal(response.statusCode, 400, key);
        assert.ok((response.json() as ErrorBody).error.details.some((d) => d.field === 'Idempotency-Key'));
      }
      const [p] = await insertPatients(db, a.id, 1);
      const body = { ...(await bookingBody()), patientId: p! };
      assert.equal((await post(undefined, body)).statusCode, 201);
      assert.equal((await post(undefined, body)).statusCode, 409); // the second is a real second attempt
    });

    test('a replay is audited as a read', async () => {
      const body = await bookingBody();
      const first = await post('audited-1', body);
      await post('audited-1', body);
      const { rows } = await withPractice(db, a.id, (tx) =>
        tx.query<{ action: string }>("SELECT action FROM audit_events WHERE $1 = ANY(resource_ids) ORDER BY id", [first.json().id]),
      );
      assert.deepEqual(rows.map((r) => r.action), ['appointment.create', 'idempotency.replay']);
    });

    test('another practice cannot read a key’s stored response (row-level security)', async () => {
      const { rows } = await withPractice(db, b.id, (tx) => tx.query("SELECT 1 FROM idempotency_keys WHERE key = 'retry-1'"));
      assert.equal(rows.length, 0);
      assert.ok((await countAppointments(db, b.id)) >= 0);
    });
  });
}
