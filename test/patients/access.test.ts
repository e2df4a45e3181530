// A patient's accounting of disclosures (access log) and right-of-access export.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { recordAudit } from '../../src/audit/audit.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { book, createService, hoursFromNow } from '../appointments/scheduling-helpers.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { createPatient } from './helpers.js';

interface Entry {
  id: number;
  action: string;
  actor: { type: string; id: string | null; role: string | null; apiKeyName: string | null };
  requestId: string | null;
  ip: string | null;
  emergencyAccessGrantId: string | null;
}

for (const target of databaseTargets()) {
  describe(`patient access log and export on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, { emergencyAccess: { defaultMinutes: 60, maxMinutes: 240, requireMfa: false } });
    const practice = await createTestPractice(app, 'Privacy Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const { ADMIN: admin, STAFF: staff, MANAGER: manager, PRACTITIONER: practitioner } = practice.users;
    const patient = await createPatient(app, admin.headers);
    const bystander = await createPatient(app, admin.headers);

    const accessLog = async (id = patient.id, headers = admin.headers, query = '') => {
      const response = await app.inject({ method: 'GET', url: `/v1/patients/${id}/access-log${query}`, headers });
      return response;
    };
    const entries = async (query = '') => (await accessLog(patient.id, admin.headers, query)).json() as { data: Entry[]; pagination: { total: number } };

    test('the access log lists reads, list pages that returned the patient, changes, API-key reads and disclosures', async () => {
      const read = await app.inject({ method: 'GET', url: `/v1/patients/${patient.id}`, headers: staff.headers, remoteAddress: '198.51.100.7' });
      assert.equal(read.statusCode, 200);
      assert.equal((await app.inject({ method: 'GET', url: '/v1/patients?limit=100', headers: staff.headers })).statusCode, 200);
      assert.equal((await app.inject({ method: 'PATCH', url: `/v1/patients/${patient.id}`, headers: admin.headers, payload: { notes: 'updated' } })).statusCode, 200);
      const keyResponse = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin.headers, payload: { name: 'Loyalty export', permissions: ['read:patients'] } });
      const key = (keyResponse.json() as { key: string }).key;
      assert.equal((await app.inject({ method: 'GET', url: `/v1/patients/${patient.id}`, headers: { 'x-api-key': key } })).statusCode, 200);
      // A webhook delivery that carried the record writes this action (events/webhooks).
      await withPractice(db, practice.id, (tx) =>
        recordAudit(tx, { practiceId: practice.id, actorType: 'system', actorId: null, action: 'webhook.disclosure', resourceType: 'patient', resourceIds: [patient.id], outcome: 'success' }),
      );
      // The other patient's reads are not in this patient's log.
      await app.inject({ method: 'GET', url: `/v1/patients/${bystander.id}`, headers: staff.headers });

      const log = await entries();
      const actions = log.data.map((e) => e.action);
      for (const action of ['patient.create', 'patient.read', 'patient.list', 'patient.update', 'webhook.disclosure']) {
        assert.ok(actions.includes(action), `${action} in ${actions.join(',')}`);
      }
      assert.equal(log.pagination.total, log.data.length);
      const staffRead = log.data.find((e) => e.requestId === read.headers['x-request-id']);
      assert.deepEqual([staffRead?.action, staffRead?.actor.id, staffRead?.actor.role, staffRead?.ip], ['patient.read', staff.id, 'STAFF', '198.51.100.7']);
      assert.ok(log.data.some((e) => e.actor.type === 'api_key' && e.actor.apiKeyName === 'Loyalty export'));
      // Newest first, and reading the log is itself in the log.
      assert.equal((await entries()).data[0]!.action, 'patient.access_log');
    });

    test('the access log is paged like every list', async () => {
      const first = await entries('?limit=3');
      assert.equal(first.data.length, 3);
      assert.ok(first.pagination.total > 3);
      // That read added its own event at the top, so page 2 of 2 now starts at the first read's second entry.
      const second = (await entries('?limit=2&page=2')).data;
      assert.deepEqual(second.map((e) => e.id), first.data.slice(1, 3).map((e) => e.id));
      assert.equal((await accessLog(patient.id, admin.headers, '?limit=101')).statusCode, 400);
    });

    test('a request allowed by break-glass is marked with its grant in the access log', async () => {
      const granted = await app.inject({ method: 'POST', url: '/v1/emergency-access', headers: practitioner.headers, payload: { permissions: ['write:patients'], reason: 'urgent chart correction' } });
      assert.equal(granted.statusCode, 201, granted.body);
      const grantId = (granted.json() as { id: string }).id;
      const patched = await app.inject({ method: 'PATCH', url: `/v1/patients/${patient.id}`, headers: practitioner.headers, payload: { notes: 'allergy noted' } });
      assert.equal(patched.statusCode, 200);
      const entry = (await entries()).data.find((e) => e.requestId === patched.headers['x-request-id']);
      assert.deepEqual([entry?.action, entry?.emergencyAccessGrantId], ['patient.update', grantId]);
      const ordinary = (await entries()).data.find((e) => e.action === 'patient.create');
      assert.equal(ordinary?.emergencyAccessGrantId, null);
    });

    test('practice A cannot read the access log or the export of practice B’s patient', async () => {
      for (const kind of ['access-log', 'export']) {
        const response = await app.inject({ method: 'GET', url: `/v1/patients/${patient.id}/${kind}`, headers: other.users.ADMIN.headers });
        assert.equal(response.statusCode, 404, kind);
        const malformed = await app.inject({ method: 'GET', url: `/v1/patients/not-an-id/${kind}`, headers: admin.headers });
        assert.equal(malformed.statusCode, 404, kind);
      }
    });

    test('a practitioner or staff member cannot read a patient’s access log or export; a manager can', async () => {
      for (const user of [practitioner, staff]) {
        assert.equal((await accessLog(patient.id, user.headers)).statusCode, 403);
        assert.equal((await app.inject({ method: 'GET', url: `/v1/patients/${patient.id}/export`, headers: user.headers })).statusCode, 403);
      }
      assert.equal((await accessLog(patient.id, manager.headers)).statusCode, 200);
    });

    test('the export holds the patient, their appointments and reconciliation matches, and is audited', async () => {
      const service = await createService(app, admin.headers);
      const booked = await book(app, admin.headers, { patientId: patient.id, practitionerId: practitioner.id, serviceId: service.id, startTime: hoursFromNow(48) });
      assert.equal(booked.statusCode, 201, booked.body);
      const appointmentId = (booked.json() as { id: string }).id;
      await book(app, admin.headers, { patientId: bystander.id, practitionerId: practitioner.id, serviceId: service.id, startTime: hoursFromNow(72) });
      await withPractice(db, practice.id, (tx) =>
        tx.query(
          `INSERT INTO reconciliation_runs (practice_id, created_by_type, created_by_id, algorithm, target, confidence_threshold, record_count,
             matched_count, unmatched_count, candidate_count, mean_confidence, processing_ms, matches, unmatched)
           VALUES ($1, 'user', $2, 'HYBRID', 'PATIENTS', 0.8, 2, 2, 0, 2, 0.9, 1, $3, '[]')`,
          [practice.id, admin.id, JSON.stringify([{ entityId: patient.id, confidence: 0.93 }, { entityId: bystander.id, confidence: 0.9 }])],
        ),
      );
      const response = await app.inject({ method: 'GET', url: `/v1/patients/${patient.id}/export`, headers: manager.headers });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { patient: { id: string; notes: string }; appointments: Array<{ id: string }>; reconciliationMatches: Array<{ match: { entityId: string } }> };
      assert.equal(body.patient.id, patient.id);
      assert.deepEqual(body.appointments.map((a) => a.id), [appointmentId]);
      assert.deepEqual(body.reconciliationMatches.map((m) => m.match.entityId), [patient.id]);
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ resource_ids: string[] }>("SELECT resource_ids FROM audit_events WHERE action = 'patient.export' AND request_id = $1", [response.headers['x-request-id']]),
      );
      assert.deepEqual(rows[0]?.resource_ids, [patient.id, appointmentId]);
      // The export shows in the patient's accounting too.
      assert.ok((await entries()).data.some((e) => e.action === 'patient.export'));
    });

    // On a small table the planner rightly prefers the practice index; with sequential scans off,
    // the match itself must still be one the GIN index can serve (`= ANY (resource_ids)` is not).
    test('the access log’s resource-id match can use the resource-id index', { skip: target.kind !== 'postgres' && 'plans checked on PostgreSQL' }, async () => {
      const plan = await withSystem(db, async (tx) => {
        await tx.query('SET LOCAL enable_seqscan = off');
        const { rows } = await tx.query<{ 'QUERY PLAN': string }>(
          'EXPLAIN SELECT id FROM audit_events e WHERE e.resource_ids @> ARRAY[$1]::text[]',
          [patient.id],
        );
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      });
      assert.match(plan, /audit_events_resource_ids_idx/, plan);
    });
  });
}
