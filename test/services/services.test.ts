// The services catalog (issue 4 item 1): permissions per the blueprint matrix, validation,
// duplicate names, deactivation, and practice isolation, on every database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { book, createService, insertPatient, type ErrorBody } from '../appointments/scheduling-helpers.js';

interface ServiceBody {
  id: string;
  name: string;
  category: string;
  durationMinutes: number;
  priceCents: number;
  active: boolean;
}

for (const target of databaseTargets()) {
  describe(`services on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const a = await createTestPractice(app, 'Spa A');
    const b = await createTestPractice(app, 'Spa B');
    const manager = a.users.MANAGER.headers;

    const post = (headers: Record<string, string>, payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/v1/services', headers, payload });
    const patch = (id: string, headers: Record<string, string>, payload: Record<string, unknown>) =>
      app.inject({ method: 'PATCH', url: `/v1/services/${id}`, headers, payload });

    test('a MANAGER adds a service: 201, Location, defaults (category General, active)', async () => {
      const response = await post(manager, { name: '  Botox®   – 20 units ', durationMinutes: 30, priceCents: 28_000 });
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json() as ServiceBody;
      assert.equal(response.headers.location, `/v1/services/${body.id}`);
      assert.equal(body.name, 'Botox® – 20 units');
      assert.equal(body.category, 'General');
      assert.equal(body.active, true);
      const read = await app.inject({ url: `/v1/services/${body.id}`, headers: a.users.STAFF.headers });
      assert.equal(read.statusCode, 200);
      assert.equal(read.json().priceCents, 28_000);
    });

    test('STAFF and PRACTITIONER read the catalog but cannot change it (403); ADMIN can', async () => {
      const service = await createService(app, manager);
      for (const role of ['STAFF', 'PRACTITIONER'] as const) {
        const headers = a.users[role].headers;
        assert.equal((await app.inject({ url: '/v1/services', headers })).statusCode, 200);
        assert.equal((await post(headers, { name: `By ${role}`, durationMinutes: 10, priceCents: 1 })).statusCode, 403);
        assert.equal((await patch(service.id, headers, { priceCents: 1 })).statusCode, 403);
      }
      assert.equal((await post(a.users.ADMIN.headers, { name: 'By admin', durationMinutes: 10, priceCents: 1 })).statusCode, 201);
      assert.equal((await app.inject({ url: '/v1/services' })).statusCode, 401);
    });

    test('a duplicate name in the practice is 409 SERVICE_EXISTS naming the existing one (case-insensitive)', async () => {
      const first = await createService(app, manager, { name: 'HydraFacial Deluxe' });
      const response = await post(manager, { name: 'hydrafacial deluxe', durationMinutes: 60, priceCents: 1 });
      assert.equal(response.statusCode, 409);
      const body = response.json() as ErrorBody;
      assert.equal(body.error.code, 'SERVICE_EXISTS');
      assert.match(body.error.details[0]!.message, new RegExp(first.id));
      // Another practice may use the same name.
      assert.equal((await post(b.users.MANAGER.headers, { name: 'HydraFacial Deluxe', durationMinutes: 60, priceCents: 1 })).statusCode, 201);
      // Renaming onto an existing name is refused the same way.
      const other = await createService(app, manager);
      assert.equal((await patch(other.id, manager, { name: 'HYDRAFACIAL DELUXE' })).statusCode, 409);
    });

    const invalid: Array<[string, Record<string, unknown>]> = [
      ['a zero duration', { name: 'X1', durationMinutes: 0, priceCents: 1 }],
      ['a 13-hour duration', { name: 'X2', durationMinutes: 721, priceCents: 1 }],
      ['a fractional duration', { name: 'X3', durationMinutes: 30.5, priceCents: 1 }],
      ['a negative price', { name: 'X4', durationMinutes: 30, priceCents: -1 }],
      ['a price in dollars', { name: 'X5', durationMinutes: 30, priceCents: 19.99 }],
      ['a blank name', { name: '   ', durationMinutes: 30, priceCents: 1 }],
      ['markup in the name', { name: '<img src=x onerror=alert(1)>', durationMinutes: 30, priceCents: 1 }],
      ['a missing price', { name: 'X6', durationMinutes: 30 }],
      ['an unknown field', { name: 'X7', durationMinutes: 30, priceCents: 1, color: 'red' }],
      ['a 1 MB name', { name: 'x'.repeat(1_000_000), durationMinutes: 30, priceCents: 1 }],
    ];
    for (const [name, payload] of invalid) {
      test(`refuses ${name} with the envelope and writes nothing`, async () => {
        const response = await post(manager, payload);
        assert.ok([400, 413].includes(response.statusCode), `${response.statusCode} ${response.body.slice(0, 200)}`);
        assert.ok((response.json() as ErrorBody).error.code);
        const list = await app.inject({ url: '/v1/services?limit=100', headers: manager });
        assert.ok(!(list.json() as { data: ServiceBody[] }).data.some((s) => s.name === payload.name));
      });
    }

    test('a deactivated service cannot be booked (422 SERVICE_INACTIVE) until reactivated', async () => {
      const service = await createService(app, manager, { name: 'Retired Peel' });
      const off = await patch(service.id, manager, { active: false });
      assert.equal(off.statusCode, 200);
      assert.equal(off.json().active, false);
      const booking = {
        patientId: await insertPatient(db, a.id),
        practitionerId: a.users.PRACTITIONER.id,
        serviceId: service.id,
        startTime: '2027-09-01T10:00:00Z',
      };
      const refused = await book(app, a.users.STAFF.headers, booking);
      assert.equal(refused.statusCode, 422);
      assert.equal((refused.json() as ErrorBody).error.code, 'SERVICE_INACTIVE');
      await patch(service.id, manager, { active: true });
      assert.equal((await book(app, a.users.STAFF.headers, booking)).statusCode, 201);
    });

    test('PATCH changes only what it names; an empty body is 400', async () => {
      const service = await createService(app, manager, { durationMinutes: 45, priceCents: 9_000 });
      const response = await patch(service.id, manager, { priceCents: 9_500 });
      assert.equal(response.statusCode, 200);
      assert.equal(response.json().durationMinutes, 45);
      assert.equal(response.json().priceCents, 9_500);
      assert.equal((await patch(service.id, manager, {})).statusCode, 400);
    });

    test('lists by category and name with exact totals, filtered by active and category', async () => {
      await createService(app, b.users.MANAGER.headers, { category: 'Lasers', name: 'Alpha' });
      await createService(app, b.users.MANAGER.headers, { category: 'Lasers', name: 'beta', active: false });
      await createService(app, b.users.MANAGER.headers, { category: 'Facials', name: 'Gamma' });
      const all = await app.inject({ url: '/v1/services?limit=2', headers: b.users.STAFF.headers });
      const body = all.json() as { data: ServiceBody[]; pagination: Record<string, number> };
      assert.equal(body.pagination.limit, 2);
      assert.ok((body.pagination.total ?? 0) >= 3);
      const lasers = await app.inject({ url: '/v1/services?category=lasers&active=true', headers: b.users.STAFF.headers });
      assert.deepEqual((lasers.json() as { data: ServiceBody[] }).data.map((s) => s.name), ['Alpha']);
      assert.equal((await app.inject({ url: '/v1/services?limit=101', headers: manager })).statusCode, 400);
    });

    test('practice A cannot see or change practice B’s services (404, never 403)', async () => {
      const theirs = await createService(app, b.users.MANAGER.headers);
      assert.equal((await app.inject({ url: `/v1/services/${theirs.id}`, headers: manager })).statusCode, 404);
      assert.equal((await patch(theirs.id, a.users.ADMIN.headers, { priceCents: 0 })).statusCode, 404);
      const list = await app.inject({ url: '/v1/services?limit=100', headers: manager });
      assert.ok(!(list.json() as { data: ServiceBody[] }).data.some((s) => s.id === theirs.id));
      assert.equal((await app.inject({ url: '/v1/services/not-a-uuid', headers: manager })).statusCode, 404);
    });
  });
}
