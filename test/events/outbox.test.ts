// The events foundation (events/outbox.ts, events/relay.ts, migration 008): every change writes
// exactly one event in its own transaction, refused changes write none, no PHI in clear, the
// sealed resource is bound to its event, positions are contiguous and follow commit order with
// concurrent writers and two relays, row-level security, and retention.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { toStoredEvent, type StoredEventRow, STORED_EVENT_COLUMNS } from '../../src/events/outbox.js';
import { book, createService, hoursFromNow } from '../appointments/scheduling-helpers.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { newPatient } from '../patients/helpers.js';

interface Row {
  seq: number;
  position: number | null;
  practice_id: string;
  type: string;
  resource_id: string;
  payload: Record<string, unknown>;
  sealed_data: string | null;
}

async function lastSeq(db: Database): Promise<number> {
  const { rows } = await withSystem(db, (tx) => tx.query<{ seq: number | null }>('SELECT max(seq) AS seq FROM outbox_events'));
  return Number(rows[0]?.seq ?? 0);
}

async function rowsAfter(db: Database, seq: number): Promise<Row[]> {
  const { rows } = await withSystem(db, (tx) =>
    tx.query<Row>('SELECT seq, position, practice_id, type, resource_id, payload, sealed_data FROM outbox_events WHERE seq > $1 ORDER BY seq', [seq]),
  );
  return rows;
}

/** Runs a change and returns the events it wrote. */
async function eventsOf(db: Database, change: () => Promise<unknown>): Promise<Row[]> {
  const before = await lastSeq(db);
  await change();
  return rowsAfter(db, before);
}

function ok<T = Record<string, unknown>>(response: { statusCode: number; body: string; json(): unknown }, status = 200): T {
  assert.equal(response.statusCode, status, response.body);
  return response.json() as T;
}

for (const target of databaseTargets()) {
  describe(`the outbox on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Outbox Spa');
    const other = await createTestPractice(app, 'Elsewhere Spa');
    const headers = practice.users.ADMIN.headers;
    const inject = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: Record<string, unknown>) =>
      app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
    const createPatient = async (body = newPatient()) => ok<{ id: string }>(await inject('POST', '/v1/patients', body), 201);

    const expectOne = (events: Row[], type: string, resourceId: string, changedFields?: string[]) => {
      assert.equal(events.length, 1, `one event, got ${events.map((e) => e.type).join(', ')}`);
      const [event] = events;
      assert.equal(event!.type, type);
      assert.equal(event!.practice_id, practice.id);
      assert.equal(event!.resource_id, resourceId);
      assert.equal(event!.payload.resourceId, resourceId);
      assert.deepEqual(event!.payload.actor, { type: 'user', id: practice.users.ADMIN.id });
      if (changedFields !== undefined) assert.deepEqual([...(event!.payload.changedFields as string[])].sort(), [...changedFields].sort());
      return event!;
    };

    test('patients: created, updated, deactivated and imported each write exactly one event per patient', async () => {
      let id = '';
      expectOne(await eventsOf(db, async () => (id = (await createPatient()).id)), 'patient.created', id);
      expectOne(await eventsOf(db, async () => ok(await inject('PATCH', `/v1/patients/${id}`, { lastName: 'Renamed' }))), 'patient.updated', id, ['lastName']);
      expectOne(await eventsOf(db, async () => ok(await inject('DELETE', `/v1/patients/${id}`))), 'patient.deactivated', id, ['status', 'deletedAt']);
      const imported = await eventsOf(db, async () => ok(await inject('POST', '/v1/patients/import', { mode: 'atomic', patients: [newPatient(), newPatient()] })));
      assert.deepEqual(imported.map((e) => [e.type, e.payload.import]), [['patient.created', true], ['patient.created', true]]);
      assert.equal(new Set(imported.map((e) => e.resource_id)).size, 2);
    });

    test('appointments: booked, rescheduled, status changed, updated and cancelled each write exactly one event', async () => {
      const patient = await createPatient();
      const service = await createService(app, headers);
      const practitionerId = practice.users.PRACTITIONER.id;
      let id = '';
      const booked = expectOne(
        await eventsOf(db, async () => (id = ok<{ id: string }>(await book(app, headers, { patientId: patient.id, practitionerId, serviceId: service.id, startTime: hoursFromNow(48) }), 201).id)),
        'appointment.booked',
        id,
      );
      assert.deepEqual([booked.payload.patientId, booked.payload.practitionerId, booked.payload.serviceId, booked.payload.status], [patient.id, practitionerId, service.id, 'SCHEDULED']);
      expectOne(await eventsOf(db, async () => ok(await inject('PATCH', `/v1/appointments/${id}`, { startTime: hoursFromNow(50) }))), 'appointment.rescheduled', id, ['startTime', 'endTime']);
      const confirmed = expectOne(await eventsOf(db, async () => ok(await inject('PATCH', `/v1/appointments/${id}`, { status: 'CONFIRMED' }))), 'appointment.status_changed', id, ['status']);
      assert.deepEqual([confirmed.payload.from, confirmed.payload.to], ['SCHEDULED', 'CONFIRMED']);
      expectOne(await eventsOf(db, async () => ok(await inject('PATCH', `/v1/appointments/${id}`, { notes: 'Bring the consent form' }))), 'appointment.updated', id, ['notes']);
      const cancelled = expectOne(
        await eventsOf(db, async () => ok(await inject('PATCH', `/v1/appointments/${id}`, { status: 'CANCELLED', cancellationReason: 'Patient request' }))),
        'appointment.cancelled',
        id,
        ['status', 'cancellationReason'],
      );
      assert.equal(cancelled.payload.to, 'CANCELLED');
    });

    test('services and reconciliation runs write exactly one event', async () => {
      let id = '';
      expectOne(await eventsOf(db, async () => (id = (await createService(app, headers)).id)), 'service.created', id);
      expectOne(await eventsOf(db, async () => ok(await inject('PATCH', `/v1/services/${id}`, { active: false }))), 'service.updated', id, ['active']);
      let runId = '';
      const run = await eventsOf(db, async () => {
        const body = ok<{ id?: string; runId?: string }>(await inject('POST', '/v1/ai/reconcile', { data: [{ firstName: 'Ann', lastName: 'Lee' }] }));
        runId = (body.runId ?? body.id)!;
      });
      const event = expectOne(run, 'reconciliation.completed', runId);
      assert.equal(event.payload.records, 1);
    });

    test('no event for a refused change: a 409 duplicate patient, a 409 double booking, a 422', async () => {
      const body = newPatient();
      await createPatient(body);
      const patient = await createPatient();
      const service = await createService(app, headers);
      const slot = { patientId: patient.id, practitionerId: practice.users.PRACTITIONER.id, serviceId: service.id, startTime: hoursFromNow(72) };
      ok(await book(app, headers, slot), 201);
      const refused = await eventsOf(db, async () => {
        assert.equal((await inject('POST', '/v1/patients', { ...body, email: body.email })).statusCode, 409);
        assert.equal((await book(app, headers, slot)).statusCode, 409);
        assert.equal((await book(app, headers, { ...slot, startTime: hoursFromNow(80), endTime: hoursFromNow(79) })).statusCode, 422);
        assert.equal((await inject('POST', '/v1/patients/import', { mode: 'atomic', patients: [newPatient(), body] })).statusCode, 409);
      });
      assert.deepEqual(refused.map((e) => e.type), []);
    });

    test('payloads and stored rows carry no PHI in clear; envelope(…, true) opens the sealed resource, only on its own event', async () => {
      const phi = newPatient({ firstName: 'Philippa', lastName: 'Quenneville', email: 'philippa.quenneville@example.test', phoneNumber: '+12125550199' });
      const [event] = await eventsOf(db, () => createPatient(phi));
      const { rows } = await withSystem(db, (tx) => tx.query<{ text: string }>('SELECT row_to_json(o)::text AS text FROM outbox_events o WHERE seq = $1', [event!.seq]));
      for (const value of ['Philippa', 'Quenneville', 'philippa.quenneville', '5550199', '1985-04-12']) {
        assert.ok(!rows[0]!.text.includes(value), `stored row contains ${value}`);
      }
      await app.outboxRelay.drain();
      const stored = await withSystem(db, (tx) => tx.query<StoredEventRow>(`SELECT ${STORED_EVENT_COLUMNS} FROM outbox_events e WHERE e.seq = $1`, [event!.seq]));
      const envelope = app.events.envelope(toStoredEvent(stored.rows[0]!), true);
      assert.equal((envelope.resource as { firstName: string }).firstName, 'Philippa');
      assert.equal(app.events.envelope(toStoredEvent(stored.rows[0]!)).resource, undefined);
      // The sealed snapshot moved onto another event's id does not open.
      const [another] = await eventsOf(db, () => createPatient());
      const moved = toStoredEvent({ ...stored.rows[0]!, id: another!.payload.resourceId as string });
      assert.throws(() => app.events.envelope(moved, true));
    });

    test('row-level security: practice B’s scope sees none of A’s outbox rows', async () => {
      await createService(app, other.users.ADMIN.headers);
      const seen = await withPractice(db, other.id, (tx) =>
        tx.query<{ practice_id: string; n: number }>('SELECT practice_id, count(*)::int AS n FROM outbox_events GROUP BY practice_id'),
      );
      assert.deepEqual(seen.rows.map((row) => row.practice_id), [other.id]);
    });

    test('positions are contiguous and unique with 50 concurrent changes through two apps (two relays)', async () => {
      const second = await startTestApp(db);
      const before = await lastSeq(db);
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => createService(i % 2 === 0 ? app : second.app, headers)),
      );
      await Promise.all([app.outboxRelay.drain(), second.app.outboxRelay.drain()]);
      const rows = await rowsAfter(db, before);
      assert.equal(rows.length, 50);
      const { rows: all } = await withSystem(db, (tx) =>
        tx.query<{ position: number | null }>('SELECT position FROM outbox_events ORDER BY position NULLS FIRST'),
      );
      const positions = all.map((row) => Number(row.position));
      assert.ok(all.every((row) => row.position !== null), 'every committed event has a position');
      assert.deepEqual(positions, Array.from({ length: positions.length }, (_, i) => positions[0]! + i), 'contiguous');
    });

    if (target.kind === 'postgres') {
      test('an event whose transaction commits later gets a later position, whatever its seq', async () => {
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        let inserted!: () => void;
        const insertedSignal = new Promise<void>((resolve) => (inserted = resolve));
        const slow = withPractice(db, practice.id, async (tx) => {
          await app.events.record(tx, { practiceId: practice.id, type: 'service.updated', resourceId: crypto.randomUUID(), actor: { type: 'system', id: null } });
          inserted();
          await held;
        });
        await insertedSignal;
        const fast = await createService(app, headers);
        await app.outboxRelay.drain();
        release();
        await slow;
        await app.outboxRelay.drain();
        const { rows } = await withSystem(db, (tx) =>
          tx.query<{ seq: number; position: number; resource_id: string }>(
            'SELECT seq, position, resource_id FROM outbox_events WHERE practice_id = $1 ORDER BY seq DESC LIMIT 2',
            [practice.id],
          ),
        );
        const [fastRow, slowRow] = [rows.find((r) => r.resource_id === fast.id)!, rows.find((r) => r.resource_id !== fast.id)!];
        assert.ok(Number(slowRow.seq) < Number(fastRow.seq), 'the slow transaction drew its seq first');
        assert.ok(Number(slowRow.position) > Number(fastRow.position), 'but committed last, so it comes later in the stream');
      });
    }

    test('purge (fake clock) deletes only events past retention and keeps the newest position', async () => {
      const old = await eventsOf(db, () => createService(app, headers));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const boundary = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const recent = await eventsOf(db, () => createService(app, headers));
      await app.outboxRelay.drain();
      const relayAt = (at: number) => new OutboxRelay({ db, redis: null, log: app.log, retentionDays: 30, now: () => at });
      assert.ok((await relayAt(boundary + 30 * 86_400_000).purge()) > 0);
      const left = await withSystem(db, (tx) => tx.query<{ seq: number }>('SELECT seq FROM outbox_events WHERE seq = ANY($1::bigint[])', [[old[0]!.seq, recent[0]!.seq]]));
      assert.deepEqual(left.rows.map((row) => Number(row.seq)), [Number(recent[0]!.seq)]);
      // Everything is past retention a year on, but the newest stays: positions continue from it.
      await relayAt(Date.now() + 365 * 86_400_000).purge();
      const { rows } = await withSystem(db, (tx) => tx.query<{ n: number; max: number }>('SELECT count(*)::int AS n, max(position) AS max FROM outbox_events'));
      assert.equal(rows[0]!.n, 1);
      const next = await eventsOf(db, () => createService(app, headers));
      await app.outboxRelay.drain();
      const { rows: after } = await withSystem(db, (tx) => tx.query<{ position: number }>('SELECT position FROM outbox_events WHERE seq = $1', [next[0]!.seq]));
      assert.equal(Number(after[0]!.position), Number(rows[0]!.max) + 1);
    });
  });
}

