// Double booking under concurrency: many simultaneous requests for one slot, on one server and on
// two servers sharing one PostgreSQL. The exclusion constraints decide; exactly one booking wins
// and every loser gets 409 TIME_SLOT_CONFLICT naming the winner.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { BOOKING_LOCK_CLASS } from '../../src/appointments/repository.js';
import { openPostgres } from '../../src/db/database.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { addUser, book, conflictingId, countAppointments, createService, insertPatients, type ErrorBody } from './scheduling-helpers.js';

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

function assertOneWinner(responses: Response[]) {
  const statuses = responses.map((r) => r.statusCode);
  const winners = responses.filter((r) => r.statusCode === 201);
  assert.equal(winners.length, 1, `statuses: ${statuses.join(',')}`);
  const winnerId = (winners[0]!.json() as { id: string }).id;
  for (const loser of responses.filter((r) => r.statusCode !== 201)) {
    assert.equal(loser.statusCode, 409, loser.body);
    assert.equal((loser.json() as ErrorBody).error.code, 'TIME_SLOT_CONFLICT');
    assert.equal(conflictingId(loser), winnerId, loser.body);
  }
  return winnerId;
}

for (const target of databaseTargets()) {
  describe(`concurrent bookings on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Busy Spa');
    const service = await createService(app, practice.users.MANAGER.headers, { durationMinutes: 60 });
    const headers = practice.users.STAFF.headers;

    test('50 simultaneous bookings of one practitioner’s slot: exactly one 201, 49 × 409 naming it', async () => {
      const patients = await insertPatients(db, practice.id, 50);
      const responses = await Promise.all(
        patients.map((patientId) =>
          book(app, headers, { patientId, practitionerId: practice.users.PRACTITIONER.id, serviceId: service.id, startTime: '2027-08-02T15:00:00Z' }),
        ),
      );
      assertOneWinner(responses);
      assert.equal(await countAppointments(db, practice.id, '2027-08-02'), 1);
    });

    test('20 simultaneous bookings of one room by different practitioners: exactly one wins', async () => {
      const patients = await insertPatients(db, practice.id, 20);
      const practitioners = await Promise.all(patients.map(() => addUser(db, practice.id)));
      const responses = await Promise.all(
        patients.map((patientId, i) =>
          book(app, headers, {
            patientId,
            practitionerId: practitioners[i]!,
            serviceId: service.id,
            startTime: `2027-08-03T15:${String(i).padStart(2, '0')}:00Z`,
            room: 'Laser 1',
          }),
        ),
      );
      assertOneWinner(responses);
    });

    test('two reschedules racing into one slot: one moves, the other is 409', async () => {
      const [p1, p2] = await insertPatients(db, practice.id, 2);
      const first = await book(app, headers, { patientId: p1, practitionerId: practice.users.PRACTITIONER.id, serviceId: service.id, startTime: '2027-08-04T09:00:00Z' });
      const second = await book(app, headers, { patientId: p2, practitionerId: practice.users.PRACTITIONER.id, serviceId: service.id, startTime: '2027-08-04T11:00:00Z' });
      const ids = [first.json().id as string, second.json().id as string];
      const responses = await Promise.all(
        ids.map((id) =>
          app.inject({ method: 'PATCH', url: `/v1/appointments/${id}`, headers, payload: { startTime: '2027-08-04T15:00:00Z' } }),
        ),
      );
      assert.deepEqual(responses.map((r) => r.statusCode).sort(), [200, 409]);
    });

    if (target.kind === 'postgres') {
      test('bookings of a practice take turns; another practice never waits for them', async () => {
        const other = await createTestPractice(app, 'Quiet Spa');
        const otherService = await createService(app, other.users.MANAGER.headers, { durationMinutes: 30 });
        const [patientId] = await insertPatients(db, practice.id, 1);
        const [otherPatientId] = await insertPatients(db, other.id, 1);
        // Another transaction holds this practice's booking turn until released.
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let taken!: () => void;
        const turnTaken = new Promise<void>((resolve) => (taken = resolve));
        const holder = db.transaction(async (tx) => {
          await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2)) AS locked', [BOOKING_LOCK_CLASS, practice.id]);
          taken();
          await released;
        });
        await turnTaken;
        let settled = false;
        const waiting = book(app, headers, { patientId: patientId!, practitionerId: practice.users.PRACTITIONER.id, serviceId: service.id, startTime: '2027-08-06T15:00:00Z' });
        void waiting.then(() => (settled = true));
        try {
          const elsewhere = await book(app, other.users.STAFF.headers, {
            patientId: otherPatientId!,
            practitionerId: other.users.PRACTITIONER.id,
            serviceId: otherService.id,
            startTime: '2027-08-06T15:00:00Z',
          });
          assert.equal(elsewhere.statusCode, 201, elsewhere.body);
          await new Promise((resolve) => setTimeout(resolve, 300));
          assert.equal(settled, false, 'the booking waits for its turn');
        } finally {
          release();
          await holder;
        }
        assert.equal((await waiting).statusCode, 201);
      });

      test('50 simultaneous bookings split across two server instances on one database: exactly one 201', async () => {
        const { rows } = await db.query<{ schema: string }>('SELECT current_schema() AS schema');
        const second = await openPostgres({
          connectionString: process.env.DATABASE_URL!,
          poolSize: 8,
          searchPath: `${rows[0]!.schema},public`,
        });
        after(() => second.close());
        const { app: app2 } = await startTestApp(second);
        const patients = await insertPatients(db, practice.id, 50);
        const responses = await Promise.all(
          patients.map((patientId, i) =>
            book(i % 2 === 0 ? app : app2, headers, {
              patientId,
              practitionerId: practice.users.PRACTITIONER.id,
              serviceId: service.id,
              startTime: '2027-08-05T15:00:00Z',
            }),
          ),
        );
        assertOneWinner(responses);
        assert.equal(await countAppointments(db, practice.id, '2027-08-05'), 1);
      });
    }
  });
}
