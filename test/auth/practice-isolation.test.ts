// Two practices on one server. For every route that names a record in its path, practice B's
// ADMIN (who holds every permission) gets 404 for practice A's record, exactly as for a record
// that does not exist: nothing can be read, changed or even probed. Lists never show A's ids,
// and nothing of A changed afterwards. The route table is walked, so a new route is covered too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

// A body that would be accepted for a record of one's own practice, so that a 404 can only mean
// "not yours", never "bad request".
const BODIES: Record<string, unknown> = {
  'PATCH /v1/patients/:patientId': { notes: 'changed by practice B' },
  'PATCH /v1/services/:serviceId': { active: false },
  'PATCH /v1/appointments/:appointmentId': { notes: 'changed by practice B' },
  'PATCH /v1/users/:id': { firstName: 'Intruder' },
  'POST /v1/emergency-access/:grantId/revoke': { reason: 'revoked by practice B' },
  'PATCH /v2/webhooks/:webhookId': { description: 'changed by practice B' },
  'POST /v2/reconciliations/:id/decisions': { band: 'review', action: 'reject' },
};
/** A v2 twin takes its v1 route's body (the shapes of these bodies are the same in both); a v2-only route its own. */
const bodyFor = (name: string) => BODIES[name] ?? BODIES[name.replace(/ \/v\d+\//, ' /v1/')];

for (const target of databaseTargets()) {
  describe(`practice isolation over every route on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const a = await createTestPractice(app, 'Practice A');
    const b = await createTestPractice(app, 'Practice B');
    const asA = a.users.ADMIN.headers;
    const asB = b.users.ADMIN.headers;

    const created = async (url: string, payload: object) => {
      const response = await app.inject({ method: 'POST', url, headers: asA, payload });
      assert.ok(response.statusCode === 200 || response.statusCode === 201, `${url}: ${response.statusCode} ${response.body}`);
      return response.json() as Record<string, unknown>;
    };
    const patient = await created('/v1/patients', { firstName: 'Ana', lastName: 'Reyes', dateOfBirth: '1990-02-03', email: 'ana.reyes@example.com' });
    const service = await created('/v1/services', { name: 'HydraFacial', category: 'Facials', durationMinutes: 60, priceCents: 19900 });
    const appointment = await created('/v1/appointments', {
      patientId: patient.id,
      practitionerId: a.users.PRACTITIONER.id,
      serviceId: service.id,
      startTime: '2027-03-01T10:00:00-05:00',
    });
    const apiKey = await created('/v1/api-keys', { name: 'A export', permissions: ['read:patients'] });
    // Only webhook.test: no delivery is ever attempted to this (unreachable) address.
    const webhook = await created('/v2/webhooks', { url: 'https://93.184.216.34/hooks', eventTypes: ['webhook.test'] });
    const run = await created('/v1/ai/reconcile', { data: [{ firstName: 'Ana', lastName: 'Reyes', dob: '1990-02-03' }] });
    const jobResponse = await app.inject({
      method: 'POST', url: '/v2/reconciliations?kind=PATIENTS', headers: { ...asA, 'content-type': 'text/csv' }, payload: 'First Name,Last Name,DOB\nAna,Reyes,1990-02-03\n',
    });
    assert.equal(jobResponse.statusCode, 202, jobResponse.body);
    const reconciliationJob = jobResponse.json() as { id: string };
    // A live break-glass grant of A's practitioner (made directly: granting needs MFA step-up).
    const grantId = await withSystem(app.db, async (tx) =>
      (await tx.query<{ id: string }>(
        `INSERT INTO emergency_access_grants (practice_id, user_id, permissions, reason, expires_at, tokens_valid_after)
         SELECT practice_id, id, '{write:patients}', 'isolation test grant', now() + interval '1 hour', tokens_valid_after
           FROM users WHERE id = $1 RETURNING id`,
        [a.users.PRACTITIONER.id],
      )).rows[0]!.id,
    );

    const idFor = (url: string): string => {
      if (url.includes(':patientId')) return String(patient.id);
      if (url.includes(':serviceId')) return String(service.id);
      if (url.includes(':appointmentId')) return String(appointment.id);
      if (url.includes(':runId')) return String(run.runId);
      if (url.includes(':webhookId')) return String(webhook.id);
      if (/^\/v\d+\/reconciliations\/:id/.test(url)) return reconciliationJob.id;
      if (/^\/v\d+\/api-keys\//.test(url)) return String(apiKey.id);
      if (/^\/v\d+\/users\//.test(url)) return a.users.STAFF.id;
      if (/^\/v\d+\/emergency-access\//.test(url)) return grantId;
      throw new Error(`no record of practice A for ${url}: add one to this test`);
    };

    const routes = app.routeTable.filter((route) => /^\/v\d+\//.test(route.url) && route.url.includes(':') && route.method !== 'HEAD');

    test('the walk covers every route with a record id', () => {
      assert.ok(routes.length >= 12, `${routes.length} routes`);
    });

    test('practice B gets 404 for practice A’s record on every such route', async () => {
      const leaks: string[] = [];
      for (const route of routes) {
        const name = `${route.method} ${route.url}`;
        const url = route.url.replace(/:\w+/, idFor(route.url));
        const response = await app.inject({ method: route.method as 'GET', url, headers: asB, ...(bodyFor(name) ? { payload: bodyFor(name) as object } : {}) });
        if (response.statusCode !== 404) leaks.push(`${name}: ${response.statusCode} ${response.body.slice(0, 120)}`);
        // The same request for a record that exists nowhere gets the same answer.
        const unknown = await app.inject({
          method: route.method as 'GET',
          url: route.url.replace(/:\w+/, '00000000-0000-4000-8000-000000000000'),
          headers: asB,
          ...(bodyFor(name) ? { payload: bodyFor(name) as object } : {}),
        });
        if (unknown.statusCode !== response.statusCode) leaks.push(`${name}: ${response.statusCode} for A's record but ${unknown.statusCode} for none`);
      }
      assert.deepEqual(leaks, []);
    });

    test('practice B cannot book practice A’s patient, practitioner or service', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/appointments',
        headers: asB,
        payload: { patientId: patient.id, practitionerId: a.users.PRACTITIONER.id, serviceId: service.id, startTime: '2027-03-02T10:00:00-05:00' },
      });
      assert.equal(response.statusCode, 422);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_REFERENCE');
    });

    test('no list of practice B shows any of practice A’s ids', async () => {
      const ids = [patient.id, service.id, appointment.id, apiKey.id, run.runId, grantId, ...Object.values(a.users).map((u) => u.id)].map(String);
      for (const url of ['/v1/patients?limit=100', '/v1/services?limit=100', '/v1/appointments?limit=100', '/v1/users?limit=100', '/v1/api-keys', '/v1/emergency-access?limit=100']) {
        const response = await app.inject({ url, headers: asB });
        assert.equal(response.statusCode, 200, `${url}: ${response.body.slice(0, 200)}`);
        for (const id of ids) assert.ok(!response.body.includes(id), `${url} shows ${id}`);
      }
      // B's own audit trail records the ids B probed (that is the point of auditing probes), but
      // nothing of A's own activity: A's admin and manager ids never appear in it.
      const audit = await app.inject({ url: '/v1/audit-events?limit=100', headers: asB });
      for (const id of [a.users.ADMIN.id, a.users.MANAGER.id]) assert.ok(!audit.body.includes(id), `audit shows ${id}`);
      assert.match(audit.body, /patient\.read/, 'B’s probes are in B’s own trail');
    });

    test('nothing of practice A changed', async () => {
      const get = async (url: string) => (await app.inject({ url, headers: asA })).json() as Record<string, unknown>;
      assert.equal((await get(`/v1/patients/${String(patient.id)}`)).notes, null);
      assert.equal((await get(`/v1/services/${String(service.id)}`)).active, true);
      assert.equal((await get(`/v1/appointments/${String(appointment.id)}`)).status, 'SCHEDULED');
      assert.equal((await get(`/v1/users/${a.users.STAFF.id}`)).firstName, 'Staff');
      assert.equal((await get(`/v1/users/${a.users.STAFF.id}`)).active, true);
      const keys = (await get('/v1/api-keys')) as { data: Array<{ id: string; revokedAt: string | null }> };
      assert.equal(keys.data.find((k) => k.id === apiKey.id)?.revokedAt, null);
      const grants = (await get('/v1/emergency-access')) as { data: Array<{ id: string; active: boolean }> };
      assert.equal(grants.data.find((g) => g.id === grantId)?.active, true);
      const hook = await get(`/v2/webhooks/${String(webhook.id)}`);
      assert.deepEqual([hook.description, hook.status, hook.previousSecretExpiresAt], ['', 'active', null]);
    });
  });
}
