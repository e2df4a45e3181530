// Learning from decisions through the HTTP API on real databases: applying a PATIENTS job turns its
// decisions into labelled pairs (levels only), GET /v2/reconciliations/model shows the version,
// training set and metrics, another practice sees only its own (empty) model, and the next job
// records the model version it was scored with.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { waitFor } from '../helpers/process.js';

const PATIENTS = [
  { firstName: 'Hannah', lastName: 'Kowalski', dateOfBirth: '1992-07-21', phoneNumber: '+12065550199' },
  { firstName: 'Priya', lastName: 'Raman', dateOfBirth: '1979-11-02', email: 'priya.r@outlook.com', phoneNumber: '+16505550111' },
];
// Row 0: Hannah's birth date, surname and phone under another first name (a twin: review).
// Row 1: Priya with a surname typo.
const CSV = 'First Name,Last Name,DOB,Phone\r\nXiomara,Kowalski,07/21/1992,(206) 555-0199\r\nPriya,Ramen,11/02/1979,650-555-0111\r\n';

interface ModelBody {
  version: number; status: string; trainingSetSize: number; labels: { matches: number; nonMatches: number };
  metrics: { evaluated: number; threshold: number; precision: number | null; recall: number | null } | null;
  usedBy: string[]; jobId: string | null; createdAt: string | null;
}

for (const target of databaseTargets()) {
  describe(`learning from decisions on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, {}, {});
    const practice = await createTestPractice(app, 'Learning Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const admin = practice.users.ADMIN.headers;
    const patientIds: string[] = [];
    for (const body of PATIENTS) {
      const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: body });
      assert.equal(created.statusCode, 201, created.body);
      patientIds.push((created.json() as { id: string }).id);
    }

    const model = async (headers = admin) => {
      const response = await app.inject({ url: '/v2/reconciliations/model', headers });
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as ModelBody;
    };
    const runJob = async (app_: FastifyInstance) => {
      const response = await app_.inject({ method: 'POST', url: '/v2/reconciliations?kind=PATIENTS&confidence=0.9', headers: { ...admin, 'content-type': 'text/csv' }, payload: CSV });
      assert.equal(response.statusCode, 202, response.body);
      const { id } = response.json() as { id: string };
      return waitFor(`job ${id}`, async () => {
        const job = (await app_.inject({ url: `/v2/reconciliations/${id}`, headers: admin })).json() as { id: string; status: string; modelVersion: number | null };
        return job.status === 'succeeded' || job.status === 'failed' ? job : null;
      }, { timeoutMs: 60_000, intervalMs: 100 });
    };

    let firstJob = '';

    test('a practice with no decisions yet has model version 0 and "no labels yet" (not a 404)', async () => {
      assert.deepEqual(await model(), {
        version: 0, status: 'no labels yet', trainingSetSize: 0, labels: { matches: 0, nonMatches: 0 }, metrics: null,
        usedBy: ['ML_MODEL', 'HYBRID'], jobId: null, createdAt: null,
      });
    });

    test('a job scored before any label records model version 0', async () => {
      const job = await runJob(app);
      assert.equal(job.status, 'succeeded');
      assert.equal(job.modelVersion, 0);
      firstJob = job.id;
    });

    test('applying decisions turns them into labelled pairs and a new model version', async () => {
      const decided = await app.inject({
        method: 'POST', url: `/v2/reconciliations/${firstJob}/decisions`, headers: admin,
        payload: { decisions: [{ recordIndex: 0, action: 'reject' }, { recordIndex: 1, action: 'accept' }] },
      });
      assert.equal(decided.statusCode, 200, decided.body);
      const applied = await app.inject({ method: 'POST', url: `/v2/reconciliations/${firstJob}/apply`, headers: admin });
      assert.equal(applied.statusCode, 200, applied.body);
      const result = applied.json() as { labelled: number; modelVersion: number | null };
      assert.equal(result.labelled, 2);
      assert.equal(result.modelVersion, 1);
      const current = await model();
      assert.equal(current.version, 1);
      assert.equal(current.status, 'trained');
      assert.equal(current.trainingSetSize, 2);
      assert.deepEqual(current.labels, { matches: 1, nonMatches: 1 });
      assert.equal(current.metrics?.evaluated, 2);
      assert.equal(current.metrics?.threshold, 0.9);
      assert.equal(current.jobId, firstJob);
    });

    test('applying again adds no labels twice and makes no new version', async () => {
      const again = await app.inject({ method: 'POST', url: `/v2/reconciliations/${firstJob}/apply`, headers: admin });
      assert.equal(again.statusCode, 200, again.body);
      assert.deepEqual([(again.json() as { labelled: number }).labelled, (again.json() as { modelVersion: number | null }).modelVersion], [0, null]);
      assert.equal((await model()).version, 1);
    });

    test('labels hold comparison levels only: no name, date or phone from the file or the patient', async () => {
      const { rows } = await withPractice(app.db, practice.id, (tx) => tx.query<Record<string, unknown>>(`SELECT * FROM reconciliation_labels ORDER BY record_index`));
      assert.equal(rows.length, 2);
      assert.deepEqual(Object.keys(rows[0]!).sort(), ['created_at', 'decision', 'entity_id', 'is_match', 'job_id', 'levels', 'practice_id', 'record_index']);
      assert.deepEqual(rows.map((r) => [r.entity_id, r.is_match, r.decision]), [[patientIds[0], false, 'reject'], [patientIds[1], true, 'accept']]);
      for (const row of rows) for (const level of row.levels as number[]) assert.ok(Number.isInteger(level) && level >= -1 && level <= 5, String(level));
      // Ids and the timestamp aside (random hex and clock digits could hold any number), nothing is left to hold a value.
      const text = JSON.stringify(rows.map(({ created_at: _at, ...rest }) => rest)).replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '');
      for (const value of ['Xiomara', 'Kowalski', 'Ramen', 'Priya', '1992', '555']) assert.ok(!text.includes(value), value);
    });

    test('practice B sees its own empty model and none of practice A\'s labels, even without the filter', async () => {
      assert.equal((await model(other.users.ADMIN.headers)).version, 0);
      const { rows } = await withPractice(app.db, other.id, (tx) => tx.query(`SELECT 1 FROM reconciliation_labels UNION ALL SELECT 1 FROM reconciliation_models`));
      assert.equal(rows.length, 0);
    });

    test('a STAFF user may read the model (read:patients)', async () => {
      assert.equal((await model(practice.users.STAFF.headers)).version, 1);
    });

    test('the next job is scored with the latest model and says which version', async () => {
      const job = await runJob(app);
      assert.equal(job.status, 'succeeded');
      assert.equal(job.modelVersion, 1);
      const first = (await app.inject({ url: `/v2/reconciliations/${firstJob}`, headers: admin })).json() as { modelVersion: number | null };
      assert.equal(first.modelVersion, 0, 'a job keeps the version it was scored with');
    });

    test('FUZZY_MATCH does not learn: its jobs carry no model version', async () => {
      const response = await app.inject({ method: 'POST', url: '/v2/reconciliations?kind=PATIENTS&algorithm=FUZZY_MATCH', headers: { ...admin, 'content-type': 'text/csv' }, payload: CSV });
      assert.equal(response.statusCode, 202, response.body);
      const { id } = response.json() as { id: string };
      const job = await waitFor(`job ${id}`, async () => {
        const body = (await app.inject({ url: `/v2/reconciliations/${id}`, headers: admin })).json() as { status: string; modelVersion: number | null };
        return body.status === 'succeeded' ? body : null;
      }, { timeoutMs: 60_000, intervalMs: 100 });
      assert.equal(job.modelVersion, null);
    });
  });
}
