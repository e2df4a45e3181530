// Denied attempts at practice data are part of the audit trail (HIPAA 164.312(b)): an insider
// probing patient records with a role that can't read them must leave a record of every try.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

interface DeniedRow {
  actor_type: string;
  actor_id: string;
  resource_type: string | null;
  resource_ids: string[];
  outcome: string;
  request_id: string;
  details: Record<string, unknown>;
}

for (const target of databaseTargets()) {
  describe(`permission denials on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Denial Spa');
    const denials = async () =>
      (
        await withPractice(db, practice.id, (tx) =>
          tx.query<DeniedRow>(
            `SELECT actor_type, actor_id, resource_type, resource_ids, outcome, request_id, details
               FROM audit_events WHERE action = 'access.denied' ORDER BY id`,
          ),
        )
      ).rows;

    test('a role without write:patients trying to change a patient leaves a denied event naming the permission and route, never the body', async () => {
      const staff = practice.users.STAFF;
      const patientId = randomUUID();
      const response = await app.inject({
        method: 'PATCH',
        url: `/v1/patients/${patientId}?q=Jane%20Doe`,
        headers: staff.headers,
        payload: { lastName: 'Doe-Secret', notes: 'allergic to lidocaine' },
      });
      assert.equal(response.statusCode, 403);
      const rows = await denials();
      assert.equal(rows.length, 1);
      const event = rows[0]!;
      assert.equal(event.outcome, 'denied');
      assert.equal(event.actor_type, 'user');
      assert.equal(event.actor_id, staff.id);
      assert.equal(event.resource_type, 'patients');
      assert.deepEqual(event.resource_ids, [patientId]);
      assert.equal(event.request_id, response.headers['x-request-id']);
      assert.deepEqual(event.details, { permission: 'write:patients', method: 'PATCH', route: '/v1/patients/:patientId' });
      assert.doesNotMatch(JSON.stringify(event), /Doe|lidocaine|Jane/);
    });

    test('an API key refused a route, and a handler refusing a grant the caller lacks, are audited too', async () => {
      const before = (await denials()).length;
      const created = await app.inject({
        method: 'POST',
        url: '/v1/api-keys',
        headers: practice.users.ADMIN.headers,
        payload: { name: 'pos', permissions: ['read:services', 'admin:api-keys'] },
      });
      const key = (created.json() as { id: string; key: string });
      const refusedRoute = await app.inject({ url: '/v1/patients', headers: { 'x-api-key': key.key } });
      assert.equal(refusedRoute.statusCode, 403);
      const refusedGrant = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: { 'x-api-key': key.key }, payload: { name: 'wider', permissions: ['read:patients'] } });
      assert.equal(refusedGrant.statusCode, 403);
      const rows = (await denials()).slice(before);
      assert.deepEqual(
        rows.map((r) => [r.actor_type, r.actor_id, r.details.permission, r.details.route]),
        [
          ['api_key', key.id, 'read:patients', '/v1/patients'],
          ['api_key', key.id, 'admin:api-keys', '/v1/api-keys'],
        ],
      );
      assert.doesNotMatch(JSON.stringify(rows), /wider/, 'the body is not recorded');
    });

    test('allowed requests and unauthenticated ones write no denial', async () => {
      const before = (await denials()).length;
      assert.equal((await app.inject({ url: '/v1/patients', headers: practice.users.STAFF.headers })).statusCode, 200);
      assert.equal((await app.inject({ url: '/v1/patients' })).statusCode, 401);
      assert.equal((await denials()).length, before);
    });
  });
}
