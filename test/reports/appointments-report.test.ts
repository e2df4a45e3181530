// GET /v1/reports/appointments (issue 4 item 4): exact counts and revenue on a small fixture, the
// same figures as a plain SQL recount on a year of data, permissions and practice isolation.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { addUser, book, createService, insertPatient, insertPatients } from '../appointments/scheduling-helpers.js';

interface Counts {
  total: number;
  scheduled: number;
  confirmed: number;
  completed: number;
  cancelled: number;
  noShow: number;
  bookedRevenueCents: number;
  completedRevenueCents: number;
}
interface Report {
  startDate: string;
  endDate: string;
  timeZone: string;
  totals: Counts & { cancellationRate: number; noShowRate: number };
  byStatus: Record<string, number>;
  byPractitioner: Array<Counts & { practitionerId: string; firstName: string; lastName: string }>;
  byService: Array<Counts & { serviceId: string; name: string; category: string }>;
}

for (const target of databaseTargets()) {
  describe(`appointment report on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const a = await createTestPractice(app, 'Spa A', 'America/New_York');
    const b = await createTestPractice(app, 'Spa B');
    const report = (query: string, headers = a.users.MANAGER.headers) =>
      app.inject({ url: `/v1/reports/appointments?${query}`, headers });

    test('counts by status, practitioner and service, rates, booked and completed revenue', async () => {
      const botox = await createService(app, a.users.MANAGER.headers, { name: 'Botox', category: 'Injectables', durationMinutes: 30, priceCents: 30_000 });
      const facial = await createService(app, a.users.MANAGER.headers, { name: 'Facial', category: 'Facials', durationMinutes: 60, priceCents: 15_000 });
      const second = await addUser(db, a.id);
      const staff = a.users.STAFF.headers;
      const plan: Array<[string, string, string, string]> = [
        // [local start (New York, EDT -04:00), practitioner, service, final status]
        ['2027-04-05T09:00:00-04:00', a.users.PRACTITIONER.id, botox.id, 'COMPLETED'],
        ['2027-04-05T10:00:00-04:00', a.users.PRACTITIONER.id, botox.id, 'CANCELLED'],
        ['2027-04-05T11:00:00-04:00', a.users.PRACTITIONER.id, facial.id, 'CONFIRMED'],
        ['2027-04-06T09:00:00-04:00', second, facial.id, 'SCHEDULED'],
        ['2027-04-06T23:30:00-04:00', second, facial.id, 'COMPLETED'], // late evening: still April 6 locally
        ['2027-04-07T00:30:00-04:00', second, botox.id, 'COMPLETED'], // April 7 locally: outside the range
      ];
      for (const [startTime, practitionerId, serviceId, status] of plan) {
        const created = await book(app, staff, { patientId: await insertPatient(db, a.id), practitionerId, serviceId, startTime });
        assert.equal(created.statusCode, 201, created.body);
        const id = created.json().id as string;
        const steps = { SCHEDULED: [], CONFIRMED: ['CONFIRMED'], COMPLETED: ['CONFIRMED', 'COMPLETED'], CANCELLED: ['CANCELLED'] }[status]!;
        for (const step of steps) {
          const payload = step === 'CANCELLED' ? { status: step, cancellationReason: 'Changed plans' } : { status: step };
          const changed = await app.inject({ method: 'PATCH', url: `/v1/appointments/${id}`, headers: staff, payload });
          assert.equal(changed.statusCode, 200, changed.body);
        }
      }
      // A later price change doesn't rewrite booked revenue.
      await app.inject({ method: 'PATCH', url: `/v1/services/${botox.id}`, headers: a.users.MANAGER.headers, payload: { priceCents: 99_999 } });

      const response = await report('startDate=2027-04-05&endDate=2027-04-06');
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as Report;
      assert.equal(body.timeZone, 'America/New_York');
      assert.deepEqual(body.byStatus, { SCHEDULED: 1, CONFIRMED: 1, COMPLETED: 2, CANCELLED: 1, NO_SHOW: 0 });
      assert.equal(body.totals.total, 5);
      assert.equal(body.totals.cancellationRate, 0.2);
      assert.equal(body.totals.noShowRate, 0);
      // Booked: everything not cancelled (30000 + 15000 + 15000 + 15000); completed: 30000 + 15000.
      assert.equal(body.totals.bookedRevenueCents, 75_000);
      assert.equal(body.totals.completedRevenueCents, 45_000);
      const first = body.byPractitioner.find((p) => p.practitionerId === a.users.PRACTITIONER.id)!;
      assert.deepEqual(
        { total: first.total, completed: first.completed, cancelled: first.cancelled, booked: first.bookedRevenueCents, name: first.lastName },
        { total: 3, completed: 1, cancelled: 1, booked: 45_000, name: 'Tester' },
      );
      const facialRow = body.byService.find((s) => s.serviceId === facial.id)!;
      assert.deepEqual(
        { name: facialRow.name, category: facialRow.category, total: facialRow.total, completedRevenueCents: facialRow.completedRevenueCents },
        { name: 'Facial', category: 'Facials', total: 3, completedRevenueCents: 15_000 },
      );
    });

    test('an empty range is all zeros, not an error', async () => {
      const body = (await report('startDate=2030-01-01&endDate=2030-01-31')).json() as Report;
      assert.equal(body.totals.total, 0);
      assert.equal(body.totals.cancellationRate, 0);
      assert.deepEqual(body.byPractitioner, []);
    });

    test('permissions: PRACTITIONER and MANAGER may read reports, STAFF may not (403)', async () => {
      assert.equal((await report('startDate=2027-04-05&endDate=2027-04-06', a.users.PRACTITIONER.headers)).statusCode, 200);
      assert.equal((await report('startDate=2027-04-05&endDate=2027-04-06', a.users.STAFF.headers)).statusCode, 403);
    });

    test('bad ranges are 400: missing dates, end before start, more than 366 days, not a date', async () => {
      for (const query of ['startDate=2027-04-05', 'startDate=2027-04-05&endDate=2027-04-04', 'startDate=2026-01-01&endDate=2027-01-02', 'startDate=2027-02-30&endDate=2027-03-01']) {
        assert.equal((await report(query)).statusCode, 400, query);
      }
    });

    test('practice B’s report never includes practice A’s appointments', async () => {
      const body = (await report('startDate=2027-04-05&endDate=2027-04-06', b.users.MANAGER.headers)).json() as Report;
      assert.equal(body.totals.total, 0);
    });

    test('a year of data (about 14,600 appointments) matches a plain SQL recount', async (t) => {
      const practice = await createTestPractice(app, 'Year Spa', 'America/Chicago');
      const services = await Promise.all(
        [10_000, 20_000, 35_000].map((priceCents, i) => createService(app, practice.users.MANAGER.headers, { name: `S${i}`, priceCents, durationMinutes: 45 })),
      );
      const practitioners = [practice.users.PRACTITIONER.id, ...(await Promise.all([1, 2, 3].map(() => addUser(db, practice.id))))];
      const patients = await insertPatients(db, practice.id, 40);
      // 365 days x 4 practitioners x 10 slots of 45 minutes; each (practitioner, slot) has its own patient.
      await withPractice(db, practice.id, (tx) =>
        tx.query(
          `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time,
                                     status, price_cents, cancellation_reason)
           SELECT $1, ($2::uuid[])[p * 10 + s + 1], ($3::uuid[])[p + 1], ($4::uuid[])[(d + s) % 3 + 1],
                  t, t + interval '45 minutes',
                  CASE (d * 7 + s * 3 + p) % 10 WHEN 0 THEN 'CANCELLED' WHEN 1 THEN 'NO_SHOW'
                       WHEN 2 THEN 'COMPLETED' WHEN 3 THEN 'COMPLETED' WHEN 4 THEN 'COMPLETED' WHEN 5 THEN 'COMPLETED'
                       WHEN 6 THEN 'CONFIRMED' WHEN 7 THEN 'CONFIRMED' ELSE 'SCHEDULED' END,
                  ($5::int[])[(d + s) % 3 + 1],
                  CASE WHEN (d * 7 + s * 3 + p) % 10 = 0 THEN 'seeded' END
             FROM generate_series(0, 364) AS d, generate_series(0, 3) AS p, generate_series(0, 9) AS s,
                  LATERAL (SELECT (('2027-01-01'::date + d)::timestamp + interval '8 hours' + s * interval '45 minutes')
                                  AT TIME ZONE 'America/Chicago' AS t) AS slot`,
          [practice.id, patients, practitioners, services.map((s) => s.id), [10_000, 20_000, 35_000]],
        ),
      );
      const started = performance.now();
      const response = await report('startDate=2027-01-01&endDate=2027-12-31', practice.users.MANAGER.headers);
      const elapsed = performance.now() - started;
      t.diagnostic(`report over ${target.kind}: 14,600 appointments in ${elapsed.toFixed(0)} ms`);
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as Report;
      const expected = await withPractice(db, practice.id, async (tx) =>
        (
          await tx.query<{ total: number; cancelled: number; completed: number; booked: number; done: number }>(
            `SELECT count(*)::int AS total,
                    count(*) FILTER (WHERE status = 'CANCELLED')::int AS cancelled,
                    count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed,
                    sum(price_cents) FILTER (WHERE status NOT IN ('CANCELLED', 'NO_SHOW'))::int AS booked,
                    sum(price_cents) FILTER (WHERE status = 'COMPLETED')::int AS done
               FROM appointments`,
          )
        ).rows[0]!,
      );
      assert.equal(expected.total, 14_600);
      assert.equal(body.totals.total, expected.total);
      assert.equal(body.totals.cancelled, expected.cancelled);
      assert.equal(body.totals.completed, expected.completed);
      assert.equal(body.totals.bookedRevenueCents, expected.booked);
      assert.equal(body.totals.completedRevenueCents, expected.done);
      assert.equal(body.byPractitioner.length, 4);
      assert.equal(body.byPractitioner.reduce((n, p) => n + p.total, 0), 14_600);
      assert.equal(body.byService.reduce((n, s) => n + s.bookedRevenueCents, 0), expected.booked);
      assert.equal(Object.values(body.byStatus).reduce((n, c) => n + c, 0), 14_600);
      // One calendar month in the practice's zone: January has 31 days x 40 appointments.
      const january = (await report('startDate=2027-01-01&endDate=2027-01-31', practice.users.MANAGER.headers)).json() as Report;
      assert.equal(january.totals.total, 31 * 40);
    });
  });
}
