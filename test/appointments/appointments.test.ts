// Appointments (issue 4 item 3): booking rules, double-booking refusals, status transitions,
// calendar lists across daylight-saving changes, and practice isolation, on every database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listAppointmentsStatement } from '../../src/appointments/repository.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import {
  addUser,
  auditActions,
  book,
  conflictingId,
  countAppointments,
  createService,
  hoursFromNow,
  insertPatient,
  insertPatients,
  type ErrorBody,
} from './scheduling-helpers.js';

interface AppointmentBody {
  id: string;
  patientId: string;
  practitionerId: string;
  serviceId: string;
  startTime: string;
  endTime: string;
  room: string | null;
  notes: string | null;
  status: string;
  priceCents: number;
  cancellationReason: string | null;
  cancelledAt: string | null;
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

const planNodes = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(planNodes)];

for (const target of databaseTargets()) {
  describe(`appointments on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const a = await createTestPractice(app, 'Spa A', 'America/New_York');
    const b = await createTestPractice(app, 'Spa B', 'America/Los_Angeles');
    const staff = a.users.STAFF.headers;
    const practitionerId = a.users.PRACTITIONER.id;
    const service = await createService(app, a.users.MANAGER.headers, { durationMinutes: 60, priceCents: 30_000 });
    const shortService = await createService(app, a.users.MANAGER.headers, { durationMinutes: 30, priceCents: 12_000 });
    const patient = await insertPatient(db, a.id);

    /** Books and asserts 201; returns the appointment. */
    async function booked(body: Record<string, unknown>, headers: Record<string, string> = staff): Promise<AppointmentBody> {
      const response = await book(app, headers, body);
      assert.equal(response.statusCode, 201, response.body);
      return response.json();
    }

    const base = (patientId = patient) => ({ patientId, practitionerId, serviceId: service.id });

    test('books an appointment: 201, Location, the service duration as the default end, the price snapshot', async () => {
      const response = await book(app, staff, { ...base(), startTime: '2027-05-03T10:00:00-04:00', room: ' Laser  1 ', notes: 'First visit' });
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json() as AppointmentBody;
      assert.equal(response.headers.location, `/v1/appointments/${body.id}`);
      assert.equal(body.startTime, '2027-05-03T14:00:00.000Z');
      assert.equal(body.endTime, '2027-05-03T15:00:00.000Z');
      assert.equal(body.status, 'SCHEDULED');
      assert.equal(body.room, 'Laser 1');
      assert.equal(body.priceCents, 30_000);
      assert.equal(body.cancellationReason, null);
      assert.deepEqual(await auditActions(db, a.id, body.id), ['appointment.create']);
    });

    test('STAFF and PRACTITIONER may book (write:appointments); no credentials is 401', async () => {
      await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-04T09:00:00Z' }, a.users.PRACTITIONER.headers);
      await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-04T10:00:00Z' }, a.users.STAFF.headers);
      const anonymous = await book(app, {}, { ...base(), startTime: '2027-05-04T11:00:00Z' });
      assert.equal(anonymous.statusCode, 401);
    });

    test('an explicit endTime wins over the service duration', async () => {
      const body = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-05T09:00:00Z', endTime: '2027-05-05T09:20:00Z' });
      assert.equal(body.endTime, '2027-05-05T09:20:00.000Z');
    });

    describe('400: malformed input, nothing written', () => {
      const cases: Array<[string, Record<string, unknown>, string]> = [
        ['a missing patientId', { practitionerId, serviceId: service.id, startTime: '2027-05-06T09:00:00Z' }, 'patientId'],
        ['a malformed id', { ...base(), patientId: 'not-a-uuid', startTime: '2027-05-06T09:00:00Z' }, 'patientId'],
        ['a number for startTime', { ...base(), startTime: 1700000000 }, 'startTime'],
        ['a start time without an offset', { ...base(), startTime: '2027-05-06T09:00:00' }, 'startTime'],
        ['an impossible calendar date', { ...base(), startTime: '2027-02-30T09:00:00Z' }, 'startTime'],
        ['an unknown field', { ...base(), startTime: '2027-05-06T09:00:00Z', price: 0 }, 'price'],
        ['markup in the room name', { ...base(), startTime: '2027-05-06T09:00:00Z', room: '<script>alert(1)</script>' }, 'room'],
        ['SQL in the patient id', { ...base(), patientId: "1' OR '1'='1", startTime: '2027-05-06T09:00:00Z' }, 'patientId'],
        ['overlong notes', { ...base(), startTime: '2027-05-06T09:00:00Z', notes: 'x'.repeat(2001) }, 'notes'],
      ];
      for (const [name, payload, field] of cases) {
        test(`refuses ${name}`, async () => {
          const before = await countAppointments(db, a.id, '2027-05-06');
          const response = await book(app, staff, payload);
          assert.equal(response.statusCode, 400, response.body);
          const body = response.json() as ErrorBody;
          assert.equal(body.error.code, 'VALIDATION_ERROR');
          assert.ok(body.error.details.some((d) => d.field === field), JSON.stringify(body.error.details));
          assert.equal(await countAppointments(db, a.id, '2027-05-06'), before);
        });
      }

      test('refuses a 1 MB string with the envelope', async () => {
        const response = await book(app, staff, { ...base(), startTime: '2027-05-06T09:00:00Z', notes: 'x'.repeat(1_048_576) });
        assert.ok([400, 413].includes(response.statusCode), String(response.statusCode));
        assert.ok((response.json() as ErrorBody).error.code);
      });
    });

    describe('422: well formed but impossible', () => {
      async function refused(payload: Record<string, unknown>, code: string, field: string): Promise<void> {
        const before = await countAppointments(db, a.id, '2027-05-07');
        const response = await book(app, staff, payload);
        assert.equal(response.statusCode, 422, response.body);
        const body = response.json() as ErrorBody;
        assert.equal(body.error.code, code);
        assert.ok(body.error.details.some((d) => d.field === field), JSON.stringify(body.error.details));
        assert.equal(await countAppointments(db, a.id, '2027-05-07'), before);
      }

      test('end before start', () =>
        refused({ ...base(), startTime: '2027-05-07T10:00:00Z', endTime: '2027-05-07T09:00:00Z' }, 'INVALID_TIME_RANGE', 'endTime'));
      test('end equal to start', () =>
        refused({ ...base(), startTime: '2027-05-07T10:00:00Z', endTime: '2027-05-07T10:00:00Z' }, 'INVALID_TIME_RANGE', 'endTime'));
      test('longer than a day', () =>
        refused({ ...base(), startTime: '2027-05-07T10:00:00Z', endTime: '2027-05-08T10:00:01Z' }, 'INVALID_TIME_RANGE', 'endTime'));
      test('an absurd year', () => refused({ ...base(), startTime: '1900-01-01T10:00:00Z' }, 'APPOINTMENT_OUT_OF_RANGE', 'startTime'));
      test('an inactive patient', async () =>
        refused({ ...base(await insertPatient(db, a.id, { status: 'INACTIVE' })), startTime: '2027-05-07T11:00:00Z' }, 'PATIENT_INACTIVE', 'patientId'));
      test('a deleted patient', async () =>
        refused({ ...base(await insertPatient(db, a.id, { status: 'INACTIVE', deleted: true })), startTime: '2027-05-07T11:00:00Z' }, 'PATIENT_INACTIVE', 'patientId'));
      test('a deactivated service', async () => {
        const retired = await createService(app, a.users.MANAGER.headers, { active: false });
        await refused({ ...base(), serviceId: retired.id, startTime: '2027-05-07T11:00:00Z' }, 'SERVICE_INACTIVE', 'serviceId');
      });
      test('a practitioner who is not one (a STAFF user)', () =>
        refused({ ...base(), practitionerId: a.users.STAFF.id, startTime: '2027-05-07T11:00:00Z' }, 'NOT_A_PRACTITIONER', 'practitionerId'));
      test('a deactivated practitioner', async () =>
        refused({ ...base(), practitionerId: await addUser(db, a.id, 'PRACTITIONER', false), startTime: '2027-05-07T11:00:00Z' }, 'PRACTITIONER_INACTIVE', 'practitionerId'));
      test('unknown ids', () =>
        refused({ ...base(), patientId: '00000000-0000-4000-8000-000000000000', startTime: '2027-05-07T11:00:00Z' }, 'INVALID_REFERENCE', 'patientId'));
    });

    describe('practice isolation', () => {
      test('practice A cannot book practice B’s patient: the same 422 as an unknown id, so existence never leaks', async () => {
        const theirs = await insertPatient(db, b.id);
        const unknown = await book(app, staff, { ...base(), patientId: '00000000-0000-4000-8000-000000000001', startTime: '2027-05-08T10:00:00Z' });
        const foreign = await book(app, staff, { ...base(), patientId: theirs, startTime: '2027-05-08T10:00:00Z' });
        assert.equal(foreign.statusCode, 422);
        const strip = (r: typeof foreign) => {
          const e = (r.json() as ErrorBody).error;
          return { code: e.code, message: e.message, details: e.details };
        };
        assert.deepEqual(strip(foreign), strip(unknown));
        assert.equal(await countAppointments(db, b.id), 0);
      });

      test('practice A cannot book practice B’s practitioner or service', async () => {
        const theirService = await createService(app, b.users.MANAGER.headers);
        const practitioner = await book(app, staff, { ...base(), practitionerId: b.users.PRACTITIONER.id, startTime: '2027-05-08T11:00:00Z' });
        assert.equal((practitioner.json() as ErrorBody).error.code, 'INVALID_REFERENCE');
        const svc = await book(app, staff, { ...base(), serviceId: theirService.id, startTime: '2027-05-08T11:00:00Z' });
        assert.equal((svc.json() as ErrorBody).error.code, 'INVALID_REFERENCE');
      });

      test('practice B gets 404 for practice A’s appointment, by read and by change', async () => {
        const mine = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-08T12:00:00Z' });
        const read = await app.inject({ url: `/v1/appointments/${mine.id}`, headers: b.users.ADMIN.headers });
        assert.equal(read.statusCode, 404);
        const change = await app.inject({
          method: 'PATCH',
          url: `/v1/appointments/${mine.id}`,
          headers: b.users.ADMIN.headers,
          payload: { status: 'CANCELLED', cancellationReason: 'mischief' },
        });
        assert.equal(change.statusCode, 404);
        const list = await app.inject({ url: '/v1/appointments?startDate=2027-05-08&endDate=2027-05-08', headers: b.users.ADMIN.headers });
        assert.equal((list.json() as { data: unknown[] }).data.length, 0);
        // The probe shows in B's audit log, as a failed read of the id it asked for.
        const probes = await withPractice(db, b.id, (tx) =>
          tx.query<{ outcome: string; actor_id: string }>(
            "SELECT outcome, actor_id FROM audit_events WHERE action = 'appointment.read' AND $1 = ANY(resource_ids)",
            [mine.id],
          ),
        );
        assert.deepEqual(probes.rows, [{ outcome: 'failure', actor_id: b.users.ADMIN.id }]);
      });

      test('a malformed id is 404, not 400 or 500', async () => {
        const response = await app.inject({ url: "/v1/appointments/1'%20OR%201=1", headers: staff });
        assert.equal(response.statusCode, 404);
      });
    });

    describe('409 TIME_SLOT_CONFLICT', () => {
      test('the practitioner is busy: names the conflicting appointment', async () => {
        const first = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-10T10:00:00Z' });
        const response = await book(app, staff, { ...base(await insertPatient(db, a.id)), startTime: '2027-05-10T10:30:00Z' });
        assert.equal(response.statusCode, 409, response.body);
        const body = response.json() as ErrorBody;
        assert.equal(body.error.code, 'TIME_SLOT_CONFLICT');
        assert.equal(conflictingId(response), first.id);
        assert.ok(body.error.details.some((d) => d.field === 'practitionerId'));
        assert.match(body.error.message, new RegExp(first.id));
      });

      test('the patient is busy with another practitioner', async () => {
        const shared = await insertPatient(db, a.id);
        const first = await booked({ ...base(shared), startTime: '2027-05-11T10:00:00Z' });
        const other = await addUser(db, a.id);
        const response = await book(app, staff, { ...base(shared), practitionerId: other, startTime: '2027-05-11T10:59:00Z' });
        assert.equal(response.statusCode, 409);
        assert.equal(conflictingId(response), first.id);
        assert.ok((response.json() as ErrorBody).error.details.some((d) => d.field === 'patientId'));
      });

      test('the room is taken (names compared case-insensitively)', async () => {
        const first = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-12T10:00:00Z', room: 'Laser 2' });
        const other = await addUser(db, a.id);
        const response = await book(app, staff, {
          ...base(await insertPatient(db, a.id)),
          practitionerId: other,
          startTime: '2027-05-12T10:15:00Z',
          endTime: '2027-05-12T10:30:00Z',
          room: 'LASER 2',
        });
        assert.equal(response.statusCode, 409);
        assert.equal(conflictingId(response), first.id);
        assert.ok((response.json() as ErrorBody).error.details.some((d) => d.field === 'room'));
        // Another room at the same time is fine.
        await booked({ ...base(await insertPatient(db, a.id)), practitionerId: other, startTime: '2027-05-12T10:15:00Z', room: 'Laser 3' });
      });

      test('back-to-back is not a conflict, for the practitioner, the patient and the room', async () => {
        const shared = await insertPatient(db, a.id);
        await booked({ ...base(shared), startTime: '2027-05-13T09:00:00Z', room: 'Facial' });
        await booked({ ...base(shared), startTime: '2027-05-13T10:00:00Z', room: 'Facial' });
        await booked({ ...base(shared), startTime: '2027-05-13T08:00:00Z', room: 'Facial' });
      });

      test('a cancelled slot can be booked again', async () => {
        const first = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-14T10:00:00Z', room: 'Laser 1' });
        const cancel = await app.inject({
          method: 'PATCH',
          url: `/v1/appointments/${first.id}`,
          headers: staff,
          payload: { status: 'CANCELLED', cancellationReason: 'Patient called in sick' },
        });
        assert.equal(cancel.statusCode, 200, cancel.body);
        const again = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-14T10:00:00Z', room: 'Laser 1' });
        assert.notEqual(again.id, first.id);
      });

      test('the database refuses an overlap even when the pre-check is bypassed', async () => {
        const first = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-05-15T10:00:00Z' });
        const other = await insertPatient(db, a.id);
        await assert.rejects(
          withPractice(db, a.id, (tx) =>
            tx.query(
              `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, price_cents)
               VALUES ($1, $2, $3, $4, '2027-05-15T10:59:59Z', '2027-05-15T11:30:00Z', 0)`,
              [a.id, other, practitionerId, service.id],
            ),
          ),
          (error: { code?: string; message?: string }) => error.code === '23P01' || /appointments_practitioner_overlap/.test(error.message ?? ''),
        );
        assert.ok(first.id);
      });
    });

    describe('status transitions', () => {
      async function patch(id: string, payload: Record<string, unknown>) {
        return app.inject({ method: 'PATCH', url: `/v1/appointments/${id}`, headers: staff, payload });
      }
      async function fresh(startTime: string) {
        return booked({ ...base(await insertPatient(db, a.id)), practitionerId: await addUser(db, a.id), startTime });
      }

      test('SCHEDULED -> CONFIRMED -> COMPLETED', async () => {
        const appt = await fresh('2027-05-17T10:00:00Z');
        assert.equal((await patch(appt.id, { status: 'CONFIRMED' })).json().status, 'CONFIRMED');
        assert.equal((await patch(appt.id, { status: 'COMPLETED' })).json().status, 'COMPLETED');
        assert.deepEqual(await auditActions(db, a.id, appt.id), ['appointment.create', 'appointment.status', 'appointment.status']);
      });

      test('CONFIRMED -> CANCELLED records the reason and time', async () => {
        const appt = await fresh('2027-05-17T11:00:00Z');
        await patch(appt.id, { status: 'CONFIRMED' });
        const response = await patch(appt.id, { status: 'CANCELLED', cancellationReason: 'Rescheduling next month' });
        assert.equal(response.statusCode, 200);
        const body = response.json() as AppointmentBody;
        assert.equal(body.cancellationReason, 'Rescheduling next month');
        assert.ok(body.cancelledAt);
      });

      const invalid: Array<[string, string[], string]> = [
        ['SCHEDULED -> COMPLETED (skips confirmation)', [], 'COMPLETED'],
        ['SCHEDULED -> SCHEDULED', [], 'SCHEDULED'],
        ['COMPLETED -> CANCELLED', ['CONFIRMED', 'COMPLETED'], 'CANCELLED'],
        ['CANCELLED -> SCHEDULED', ['CANCELLED'], 'SCHEDULED'],
        ['CANCELLED -> CONFIRMED', ['CANCELLED'], 'CONFIRMED'],
        ['COMPLETED -> CONFIRMED', ['CONFIRMED', 'COMPLETED'], 'CONFIRMED'],
      ];
      for (const [name, path, to] of invalid) {
        test(`${name} is 422 INVALID_TRANSITION`, async () => {
          const appt = await fresh(`2027-05-${18 + invalid.findIndex(([n]) => n === name)}T10:00:00Z`);
          for (const step of path) {
            const ok = await patch(appt.id, step === 'CANCELLED' ? { status: step, cancellationReason: 'x' } : { status: step });
            assert.equal(ok.statusCode, 200, ok.body);
          }
          const response = await patch(appt.id, to === 'CANCELLED' ? { status: to, cancellationReason: 'x' } : { status: to });
          assert.equal(response.statusCode, 422, response.body);
          assert.equal((response.json() as ErrorBody).error.code, 'INVALID_TRANSITION');
        });
      }

      test('cancelling without a reason is 400', async () => {
        const appt = await fresh('2027-05-25T10:00:00Z');
        const response = await patch(appt.id, { status: 'CANCELLED' });
        assert.equal(response.statusCode, 400);
        assert.ok((response.json() as ErrorBody).error.details.some((d) => d.field === 'cancellationReason'));
      });

      test('NO_SHOW only once the appointment has started, and it frees the slot', async () => {
        const future = await fresh('2027-05-25T11:00:00Z');
        const early = await patch(future.id, { status: 'NO_SHOW' });
        assert.equal(early.statusCode, 422);
        assert.equal((early.json() as ErrorBody).error.code, 'INVALID_TRANSITION');

        const start = hoursFromNow(-1);
        const missed = await booked({ ...base(await insertPatient(db, a.id)), startTime: start, endTime: hoursFromNow(1) });
        const response = await patch(missed.id, { status: 'NO_SHOW' });
        assert.equal(response.statusCode, 200, response.body);
        assert.equal(response.json().status, 'NO_SHOW');
        // The practitioner can take a walk-in in the freed slot.
        await booked({ ...base(await insertPatient(db, a.id)), startTime: hoursFromNow(0), endTime: hoursFromNow(1) });
      });

      test('changing status and time together is refused (400)', async () => {
        const appt = await fresh('2027-05-26T10:00:00Z');
        const response = await patch(appt.id, { status: 'CONFIRMED', startTime: '2027-05-26T11:00:00Z' });
        assert.equal(response.statusCode, 400);
      });
    });

    describe('rescheduling', () => {
      async function patch(id: string, payload: Record<string, unknown>) {
        return app.inject({ method: 'PATCH', url: `/v1/appointments/${id}`, headers: staff, payload });
      }

      test('moves the appointment, keeps its length, and a confirmed one needs confirming again', async () => {
        const appt = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-06-01T10:00:00Z', endTime: '2027-06-01T10:45:00Z' });
        await patch(appt.id, { status: 'CONFIRMED' });
        const response = await patch(appt.id, { startTime: '2027-06-01T13:00:00Z' });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as AppointmentBody;
        assert.equal(body.startTime, '2027-06-01T13:00:00.000Z');
        assert.equal(body.endTime, '2027-06-01T13:45:00.000Z');
        assert.equal(body.status, 'SCHEDULED');
        assert.ok((await auditActions(db, a.id, appt.id)).includes('appointment.reschedule'));
      });

      test('conflicts are checked again (and the appointment never conflicts with itself)', async () => {
        const blocker = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-06-02T10:00:00Z' });
        const appt = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-06-02T12:00:00Z' });
        const clash = await patch(appt.id, { startTime: '2027-06-02T10:30:00Z' });
        assert.equal(clash.statusCode, 409);
        assert.equal(conflictingId(clash), blocker.id);
        const overlapSelf = await patch(appt.id, { startTime: '2027-06-02T12:30:00Z' });
        assert.equal(overlapSelf.statusCode, 200, overlapSelf.body);
      });

      test('to another practitioner: must be one, and checked for their conflicts', async () => {
        const appt = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-06-03T10:00:00Z' });
        const notOne = await patch(appt.id, { practitionerId: a.users.MANAGER.id });
        assert.equal(notOne.statusCode, 422);
        assert.equal((notOne.json() as ErrorBody).error.code, 'NOT_A_PRACTITIONER');
        const other = await addUser(db, a.id);
        const moved = await patch(appt.id, { practitionerId: other, room: 'Suite 9' });
        assert.equal(moved.statusCode, 200);
        assert.equal(moved.json().practitionerId, other);
        assert.equal(moved.json().room, 'Suite 9');
      });

      test('end before start on reschedule is 422; a cancelled appointment cannot be rescheduled', async () => {
        const appt = await booked({ ...base(await insertPatient(db, a.id)), startTime: '2027-06-04T10:00:00Z' });
        const backwards = await patch(appt.id, { endTime: '2027-06-04T09:00:00Z' });
        assert.equal(backwards.statusCode, 422);
        assert.equal((backwards.json() as ErrorBody).error.code, 'INVALID_TIME_RANGE');
        await patch(appt.id, { status: 'CANCELLED', cancellationReason: 'x' });
        const late = await patch(appt.id, { startTime: '2027-06-04T11:00:00Z' });
        assert.equal(late.statusCode, 422);
        assert.equal((late.json() as ErrorBody).error.code, 'INVALID_TRANSITION');
      });
    });

    describe('reading and listing', async () => {
      const practitioner2 = await addUser(db, a.id);
      const listPatient = await insertPatient(db, a.id);
      const listed: AppointmentBody[] = [];
      for (let i = 0; i < 5; i += 1) {
        listed.push(
          await booked({ patientId: listPatient, practitionerId: practitioner2, serviceId: shortService.id, startTime: `2027-07-01T${10 + i}:00:00-04:00` }),
        );
      }

      test('GET by id returns it and audits the read', async () => {
        const response = await app.inject({ url: `/v1/appointments/${listed[0]!.id}`, headers: a.users.PRACTITIONER.headers });
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.json(), listed[0]);
        assert.ok((await auditActions(db, a.id, listed[0]!.id)).includes('appointment.read'));
      });

      test('pages with exact totals, in start order, filtered by practitioner and patient; the list read records the ids', async () => {
        const url = `/v1/appointments?startDate=2027-07-01&endDate=2027-07-01&practitionerId=${practitioner2}&patientId=${listPatient}&limit=2&page=2`;
        const response = await app.inject({ url, headers: staff });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as { data: AppointmentBody[]; pagination: Record<string, number> };
        assert.deepEqual(body.pagination, { page: 2, limit: 2, total: 5, totalPages: 3 });
        assert.deepEqual(body.data.map((x) => x.id), [listed[2]!.id, listed[3]!.id]);
        // Field for field what the booking answered (timestamps reach the list as UTC text, the booking's through a Date).
        assert.deepEqual(body.data, [listed[2], listed[3]]);
        assert.ok((await auditActions(db, a.id, listed[2]!.id)).includes('appointment.list'));
      });

      test('open-ended ranges and every filter at once', async () => {
        const ids = async (query: string) => {
          const response = await app.inject({ url: `/v1/appointments?${query}&practitionerId=${practitioner2}&limit=100`, headers: staff });
          assert.equal(response.statusCode, 200, response.body);
          return (response.json() as { data: AppointmentBody[] }).data.map((x) => x.id);
        };
        const all = listed.map((x) => x.id);
        assert.deepEqual(await ids('startDate=2027-07-01'), all, 'from a day on');
        assert.deepEqual(await ids('startDate=2027-07-02'), [], 'from the next day on');
        assert.deepEqual(await ids('endDate=2027-07-01'), all, 'up to a day');
        assert.deepEqual(await ids('endDate=2027-06-30'), [], 'up to the day before');
        const every = await ids(`startDate=2027-07-01&endDate=2027-07-01&patientId=${listPatient}&status=SCHEDULED`);
        assert.ok(every.length > 0 && every.every((id) => all.includes(id)));
      });

      test('filters by status', async () => {
        await app.inject({ method: 'PATCH', url: `/v1/appointments/${listed[4]!.id}`, headers: staff, payload: { status: 'CONFIRMED' } });
        const response = await app.inject({ url: `/v1/appointments?status=CONFIRMED&practitionerId=${practitioner2}`, headers: staff });
        assert.deepEqual((response.json() as { data: AppointmentBody[] }).data.map((x) => x.id), [listed[4]!.id]);
      });

      test('a page past the end is empty and still carries the exact total', async () => {
        const url = `/v1/appointments?startDate=2027-07-01&endDate=2027-07-01&practitionerId=${practitioner2}&limit=2&page=9`;
        const body = (await app.inject({ url, headers: staff })).json() as { data: AppointmentBody[]; pagination: Record<string, number> };
        assert.deepEqual(body.data, []);
        assert.deepEqual(body.pagination, { page: 9, limit: 2, total: 5, totalPages: 3 });
      });

      test('no appointment is returned, by list or by id, when the read’s audit event cannot be written', async () => {
        const lists = "SELECT count(*)::int AS n FROM audit_events WHERE action IN ('appointment.list', 'appointment.read')";
        const before = await withSystem(db, (tx) => tx.query<{ n: number }>(lists));
        // The audit writer's role loses its right to insert (this test database only).
        await db.exec('REVOKE INSERT ON audit_events FROM medspa_system');
        let responses;
        try {
          responses = [
            await app.inject({ url: `/v1/appointments?practitionerId=${practitioner2}`, headers: staff }),
            await app.inject({ url: `/v1/appointments/${listed[0]!.id}`, headers: staff }),
          ];
        } finally {
          await db.exec('GRANT INSERT ON audit_events TO medspa_system');
        }
        for (const response of responses) {
          assert.equal(response.statusCode, 500, response.body);
          assert.equal((response.json() as ErrorBody).error.code, 'INTERNAL_ERROR');
          assert.ok(!response.body.includes(listed[0]!.id), 'the body names an appointment');
        }
        const after = await withSystem(db, (tx) => tx.query<{ n: number }>(lists));
        assert.equal(after.rows[0]!.n, before.rows[0]!.n);
        assert.equal((await app.inject({ url: `/v1/appointments/${listed[0]!.id}`, headers: staff })).statusCode, 200);
      });

      test('a day’s list over a year of appointments reads only that day from the index (generic plan, row-level security on)', async () => {
        const year = await createTestPractice(app, 'Year Spa', 'America/New_York');
        const yearService = await createService(app, year.users.MANAGER.headers, { durationMinutes: 45 });
        const yearPatients = await insertPatients(db, year.id, 8);
        // 365 days x 8 slots of 45 minutes, one practitioner, each slot its own patient.
        await withPractice(db, year.id, (tx) =>
          tx.query(
            `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, status, price_cents)
             SELECT $1, ($2::uuid[])[s + 1], $3, $4, t, t + interval '45 minutes', 'SCHEDULED', 10000
               FROM generate_series(0, 364) AS d, generate_series(0, 7) AS s,
                    LATERAL (SELECT (('2027-01-01'::date + d)::timestamp + interval '9 hours' + s * interval '45 minutes')
                                    AT TIME ZONE 'America/New_York' AS t) AS slot`,
            [year.id, yearPatients, year.users.PRACTITIONER.id, yearService.id],
          ),
        );
        await db.exec('ANALYZE appointments');
        const { sql, params } = listAppointmentsStatement({
          practiceId: year.id, startDate: '2027-03-14', endDate: '2027-03-14', status: null, practitionerId: null, patientId: null, limit: 20, offset: 0,
        });
        const plan = await withPractice(db, year.id, async (tx) => {
          // As readInPractice runs it: a plan made without the parameters' values.
          await tx.query("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)");
          await tx.query(`PREPARE day_list AS ${sql}`);
          try {
            const literals = params.map((value) => (typeof value === 'number' ? String(value) : `'${String(value)}'`)).join(', ');
            const { rows } = await tx.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE day_list(${literals})`);
            const json = rows[0]!['QUERY PLAN'];
            return (typeof json === 'string' ? JSON.parse(json) : json) as Array<{ Plan: PlanNode }>;
          } finally {
            await tx.query('DEALLOCATE day_list');
          }
        });
        const scans = planNodes(plan[0]!.Plan).filter((node) => node['Relation Name'] === 'appointments');
        assert.equal(scans.length, 2, 'the count and the page each read appointments once');
        for (const scan of scans) {
          assert.notEqual(scan['Node Type'], 'Seq Scan');
          assert.match(String(scan['Index Cond']), /start_time >= .*start_time < /, `${scan['Node Type']} without the day in its index condition`);
        }
        const body = (await app.inject({ url: '/v1/appointments?startDate=2027-03-14&endDate=2027-03-14', headers: year.users.STAFF.headers })).json();
        assert.equal(body.pagination.total, 8);
      });

      test('limit defaults to 20, 101 is 400, endDate before startDate is 400, a bad status is 400', async () => {
        const fine = await app.inject({ url: '/v1/appointments', headers: staff });
        assert.equal(fine.json().pagination.limit, 20);
        for (const query of ['limit=101', 'startDate=2027-07-02&endDate=2027-07-01', 'status=LATE', 'startDate=2027-13-01', 'practitionerId=abc']) {
          const response = await app.inject({ url: `/v1/appointments?${query}`, headers: staff });
          assert.equal(response.statusCode, 400, query);
        }
      });
    });

    describe('calendar days across daylight-saving changes (America/New_York)', async () => {
      const dstPractitioner = await addUser(db, a.id);
      async function at(startTime: string) {
        const appt = await booked({
          patientId: await insertPatient(db, a.id),
          practitionerId: dstPractitioner,
          serviceId: shortService.id,
          startTime,
        });
        return appt.id;
      }
      async function day(startDate: string, endDate = startDate) {
        const response = await app.inject({
          url: `/v1/appointments?startDate=${startDate}&endDate=${endDate}&practitionerId=${dstPractitioner}&limit=100`,
          headers: staff,
        });
        assert.equal(response.statusCode, 200, response.body);
        return (response.json() as { data: AppointmentBody[] }).data.map((x) => x.id);
      }

      // Spring forward: Sunday 2027-03-14, 02:00 EST -> 03:00 EDT (a 23-hour day).
      const sat2330 = await at('2027-03-13T23:30:00-05:00');
      const sun0015 = await at('2027-03-14T00:15:00-05:00');
      const sun0330 = await at('2027-03-14T03:30:00-04:00');
      const sun2330 = await at('2027-03-14T23:30:00-04:00');
      const mon0015 = await at('2027-03-15T00:15:00-04:00');
      // Fall back: Sunday 2027-11-07, 02:00 EDT -> 01:00 EST (a 25-hour day; 01:30 happens twice).
      const nov6 = await at('2027-11-06T23:30:00-04:00');
      const nov7a = await at('2027-11-07T00:15:00-04:00');
      const nov7b = await at('2027-11-07T01:30:00-04:00');
      const nov7c = await at('2027-11-07T01:30:00-05:00');
      const nov7d = await at('2027-11-07T23:30:00-05:00');
      const nov8 = await at('2027-11-08T00:15:00-05:00');

      test('spring-forward Sunday holds exactly its own appointments, midnight to midnight local', async () => {
        assert.deepEqual(await day('2027-03-14'), [sun0015, sun0330, sun2330]);
        assert.deepEqual(await day('2027-03-13'), [sat2330]);
        assert.deepEqual(await day('2027-03-15'), [mon0015]);
      });

      test('fall-back Sunday holds both 01:30s and the late evening', async () => {
        assert.deepEqual(await day('2027-11-07'), [nov7a, nov7b, nov7c, nov7d]);
        assert.deepEqual(await day('2027-11-06'), [nov6]);
        assert.deepEqual(await day('2027-11-08'), [nov8]);
      });

      test('a weekend range is inclusive at both ends', async () => {
        assert.deepEqual(await day('2027-11-06', '2027-11-07'), [nov6, nov7a, nov7b, nov7c, nov7d]);
        assert.deepEqual(await day('2027-03-13', '2027-03-15'), [sat2330, sun0015, sun0330, sun2330, mon0015]);
      });

      test('days are the practice’s, not UTC’s: another practice’s zone gives other days', async () => {
        // Practice B (Los Angeles) books 2027-03-14 23:30 local = 2027-03-15 06:30Z.
        const bPatient = await insertPatient(db, b.id);
        const bService = await createService(app, b.users.MANAGER.headers, { durationMinutes: 30 });
        const response = await book(app, b.users.STAFF.headers, {
          patientId: bPatient,
          practitionerId: b.users.PRACTITIONER.id,
          serviceId: bService.id,
          startTime: '2027-03-15T06:30:00Z',
        });
        assert.equal(response.statusCode, 201, response.body);
        const list = await app.inject({ url: '/v1/appointments?startDate=2027-03-14&endDate=2027-03-14', headers: b.users.STAFF.headers });
        assert.deepEqual((list.json() as { data: AppointmentBody[] }).data.map((x) => x.id), [response.json().id]);
      });
    });
  });
}
