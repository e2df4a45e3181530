// Services, appointments and reports under /v2 (blueprint 5.2): the same shapes as /v1, because
// nothing about them changed, served by the same handlers from the same records. Only the Location
// of a creation follows the version it was made through. On every database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { conflictingId, hoursFromNow, insertPatient, type ErrorBody } from './scheduling-helpers.js';

/** The body a URL answers under /v1 and under /v2, with their statuses. */
async function bothVersions(app: Awaited<ReturnType<typeof startTestApp>>['app'], path: string, headers: Record<string, string>) {
  const [v1, v2] = [await app.inject({ url: `/v1${path}`, headers }), await app.inject({ url: `/v2${path}`, headers })];
  return { v1: { status: v1.statusCode, body: v1.json() as unknown }, v2: { status: v2.statusCode, body: v2.json() as unknown } };
}

for (const target of databaseTargets()) {
  describe(`scheduling under /v2 on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const spa = await createTestPractice(app, 'Twin Scheduling Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const manager = spa.users.MANAGER.headers;
    const staff = spa.users.STAFF.headers;

    const service = await app.inject({
      method: 'POST',
      url: '/v2/services',
      headers: manager,
      payload: { name: 'Lip filler', category: 'Injectables', durationMinutes: 45, priceCents: 65_000 },
    });
    const serviceId = (service.json() as { id: string }).id;

    test('POST /v2/services: 201 with a /v2 Location, and /v1 and /v2 answer the same service', async () => {
      assert.equal(service.statusCode, 201, service.body);
      assert.equal(service.headers.location, `/v2/services/${serviceId}`);
      const read = await bothVersions(app, `/services/${serviceId}`, staff);
      assert.equal(read.v2.status, 200);
      assert.deepEqual(read.v2, read.v1);
      assert.deepEqual(read.v2.body, service.json(), 'the creation answered what a read answers');
    });

    test('the v2 catalog lists, filters and pages exactly like v1', async () => {
      for (const query of ['', '?active=true', '?category=injectables&limit=1', '?page=2&limit=1']) {
        const list = await bothVersions(app, `/services${query}`, staff);
        assert.equal(list.v2.status, 200, query);
        assert.deepEqual(list.v2, list.v1, query);
      }
    });

    test('PATCH /v2/services and its refusals are v1’s: 200, 409 SERVICE_EXISTS, 403 for STAFF, 404 across practices', async () => {
      const renamed = await app.inject({ method: 'PATCH', url: `/v2/services/${serviceId}`, headers: manager, payload: { priceCents: 70_000 } });
      assert.equal(renamed.statusCode, 200, renamed.body);
      assert.equal((renamed.json() as { priceCents: number }).priceCents, 70_000);
      const duplicate = await app.inject({ method: 'POST', url: '/v2/services', headers: manager, payload: { name: 'LIP FILLER', durationMinutes: 10, priceCents: 1 } });
      assert.equal(duplicate.statusCode, 409);
      assert.equal((duplicate.json() as ErrorBody).error.code, 'SERVICE_EXISTS');
      assert.equal((await app.inject({ method: 'PATCH', url: `/v2/services/${serviceId}`, headers: staff, payload: { priceCents: 1 } })).statusCode, 403);
      assert.equal((await app.inject({ url: `/v2/services/${serviceId}`, headers: other.users.ADMIN.headers })).statusCode, 404);
    });

    const patientId = await insertPatient(db, spa.id);
    const practitionerId = spa.users.PRACTITIONER.id;
    const startTime = hoursFromNow(72);
    const booking = { patientId, practitionerId, serviceId, startTime, room: 'Room 2' };
    const booked = await app.inject({ method: 'POST', url: '/v2/appointments', headers: { ...staff, 'idempotency-key': 'v2-booking' }, payload: booking });
    const appointmentId = (booked.json() as { id: string }).id;

    test('POST /v2/appointments: 201 with a /v2 Location; the retry replays it, Location included', async () => {
      assert.equal(booked.statusCode, 201, booked.body);
      assert.equal(booked.headers.location, `/v2/appointments/${appointmentId}`);
      const retry = await app.inject({ method: 'POST', url: '/v2/appointments', headers: { ...staff, 'idempotency-key': 'v2-booking' }, payload: booking });
      assert.equal(retry.statusCode, 201);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.equal(retry.headers.location, booked.headers.location);
      assert.deepEqual(retry.json(), booked.json());
      const elsewhere = await app.inject({ method: 'POST', url: '/v1/appointments', headers: { ...staff, 'idempotency-key': 'v2-booking' }, payload: booking });
      assert.equal(elsewhere.statusCode, 422, 'the key belongs to the v2 request: another path is another request');
    });

    test('a double booking is refused through v2 as through v1, naming the appointment in the way', async () => {
      for (const version of ['v1', 'v2']) {
        const response = await app.inject({ method: 'POST', url: `/${version}/appointments`, headers: staff, payload: booking });
        assert.equal(response.statusCode, 409, `${version}: ${response.body}`);
        assert.equal((response.json() as ErrorBody).error.code, 'TIME_SLOT_CONFLICT');
        assert.equal(conflictingId(response), appointmentId);
      }
    });

    test('one appointment and the calendar read the same under /v1 and /v2', async () => {
      const one = await bothVersions(app, `/appointments/${appointmentId}`, staff);
      assert.equal(one.v2.status, 200);
      assert.deepEqual(one.v2, one.v1);
      assert.deepEqual(one.v2.body, booked.json());
      const from = hoursFromNow(0).slice(0, 10);
      const to = hoursFromNow(24 * 7).slice(0, 10);
      for (const query of [`?startDate=${from}&endDate=${to}`, `?practitionerId=${practitionerId}`, `?status=SCHEDULED&limit=1`]) {
        const list = await bothVersions(app, `/appointments${query}`, staff);
        assert.equal(list.v2.status, list.v1.status, query);
        assert.deepEqual(list.v2, list.v1, query);
      }
      assert.equal((await app.inject({ url: `/v2/appointments/${appointmentId}`, headers: other.users.ADMIN.headers })).statusCode, 404);
    });

    test('PATCH /v2/appointments follows the same workflow: confirm, then an illegal transition is 422', async () => {
      const patch = (payload: Record<string, unknown>) =>
        app.inject({ method: 'PATCH', url: `/v2/appointments/${appointmentId}`, headers: staff, payload });
      const confirmed = await patch({ status: 'CONFIRMED' });
      assert.equal(confirmed.statusCode, 200, confirmed.body);
      assert.equal((confirmed.json() as { status: string }).status, 'CONFIRMED');
      const back = await patch({ status: 'SCHEDULED' });
      assert.equal(back.statusCode, 422, back.body);
      const read = await bothVersions(app, `/appointments/${appointmentId}`, staff);
      assert.deepEqual(read.v2, read.v1);
    });

    test('GET /v2/reports/appointments reports what v1 reports', async () => {
      const day = startTime.slice(0, 10);
      const report = await bothVersions(app, `/reports/appointments?startDate=${day}&endDate=${day}`, manager);
      assert.equal(report.v2.status, 200, JSON.stringify(report.v2.body));
      assert.deepEqual(report.v2, report.v1);
      assert.equal((await app.inject({ url: `/v2/reports/appointments?startDate=${day}&endDate=${day}`, headers: staff })).statusCode, 403, 'STAFF lacks read:reports');
    });
  });
}
