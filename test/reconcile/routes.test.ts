// POST /v1/ai/reconcile and GET /v1/ai/reconcile/{runId}, through the HTTP API: bad input, a
// realistic export matched end to end by the real engine, runs stored per practice and audited,
// permissions, the circuit breaker (fake clock, injected failures), a saturated pool, and the
// server answering /health while a 10,000-record job runs.
import { encryptPlaintextPatients } from '../../src/patients/encrypt-existing.js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../../src/db/database.js';
import { withPractice } from '../../src/db/scope.js';
import type { ReconcileResult } from '../../src/reconcile/engine/engine.js';
import { WorkerCrashedError, WorkerPool, type PoolStats } from '../../src/reconcile/pool.js';
import { isLoadShedding, type ReconcileRunner } from '../../src/reconcile/routes.js';
import type { ReconcileJob } from '../../src/reconcile/worker.js';
import { CircuitBreaker } from '../../src/resilience/circuit-breaker.js';
import { testConfig } from '../../src/config.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestPractice } from '../helpers/identity.js';
import { generateSyntheticSplit } from './synthetic.js';

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

interface SeedPatient {
  firstName: string;
  lastName: string;
  dateOfBirth?: string | null;
  email?: string | null;
  phoneNumber?: string | null;
  gender?: string | null;
  address?: Record<string, string> | null;
}

async function insertPatient(tx: Queryable, practiceId: string, p: SeedPatient): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, gender, address)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING id`,
    [practiceId, p.firstName, p.lastName, p.dateOfBirth ?? null, p.email ?? null, p.phoneNumber ?? null, p.gender ?? null, p.address ? JSON.stringify(p.address) : null],
  );
  return rows[0]!.id;
}

/** Many patients in one statement (duplicates by the practice's unique rules are skipped). */
async function insertPatients(app: FastifyInstance, practiceId: string, patients: readonly object[]): Promise<number> {
  return withPractice(app.db, practiceId, async (tx) => {
    const { rowCount } = await tx.query(
      `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, gender, address)
       SELECT $1, r."firstName", r."lastName", r."dateOfBirth", r.email, r."phoneNumber", r.gender, r.address
         FROM jsonb_to_recordset($2::jsonb) AS r("firstName" text, "lastName" text, "dateOfBirth" date, email text,
              "phoneNumber" text, gender text, address jsonb)
       ON CONFLICT DO NOTHING`,
      [practiceId, JSON.stringify(patients)],
    );
    return rowCount;
  }).then(async (inserted) => {
    // Plaintext rows, as stored before migration 015 (whose unique indexes are on blind indexes):
    // the practice's duplicate rules drop the later duplicates, then the rows are sealed as a start would.
    const { rowCount: dropped } = await app.db.query(
      `DELETE FROM patients p USING patients q
        WHERE p.practice_id = $1 AND q.practice_id = $1 AND p.phi IS NULL AND q.phi IS NULL AND p.ctid > q.ctid
          AND (p.email = q.email OR (p.date_of_birth = q.date_of_birth AND lower(p.first_name) = lower(q.first_name) AND lower(p.last_name) = lower(q.last_name)))`,
      [practiceId],
    );
    await encryptPlaintextPatients(app.db, app.keyring);
    return inserted - dropped;
  });
}

function errorOf(response: Response, status: number, code: string) {
  assert.equal(response.statusCode, status, response.body);
  const body = response.json() as { error: { code: string; message: string; details: { field: string; message: string }[] } };
  assert.equal(body.error.code, code);
  return body.error;
}

const fields = (response: Response) => errorOf(response, 400, 'VALIDATION_ERROR').details.map((d) => d.field);

const emptyResult = (job: ReconcileJob): ReconcileResult => ({
  matches: [],
  unmatched: job.incoming.map((_, i) => i),
  confidence: 0,
  algorithm: job.options.algorithm,
  stats: { compared: 0, blocks: 0 },
});

const STATS: PoolStats = { size: 1, workers: 1, busy: 0, queued: 0, queueLimit: 4, completed: 0, failed: 0, timedOut: 0, crashed: 0, rejected: 0 };

// The practice of a small med spa, with the look-alikes that must not be confused.
const PRACTICE: Record<string, SeedPatient> = {
  lizMoreno: { firstName: 'Elizabeth', lastName: 'Moreno', dateOfBirth: '1985-03-14', email: 'liz.moreno@gmail.com', phoneNumber: '+14155550123', gender: 'F', address: { line1: '12 Harbor View Rd', city: 'Sausalito', state: 'CA', postalCode: '94965' } },
  mariaGarcia90: { firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1990-05-01', email: 'maria.garcia90@yahoo.com', phoneNumber: '+13105550188', gender: 'F' },
  mariaGarcia72: { firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1972-11-30', email: 'mgarcia@outlook.com', phoneNumber: '+13105550999', gender: 'F' },
  susanWhitfield: { firstName: 'Susan', lastName: 'Whitfield', dateOfBirth: '1961-08-22', email: 'susan.whitfield@comcast.net', phoneNumber: '+16175550142', gender: 'F', address: { line1: '88 Elm St', city: 'Newton', state: 'MA', postalCode: '02458' } },
  emilyWhitfield: { firstName: 'Emily', lastName: 'Whitfield', dateOfBirth: '1992-02-09', email: 'emily.whitfield@gmail.com', phoneNumber: '+16175550142', gender: 'F', address: { line1: '88 Elm St', city: 'Newton', state: 'MA', postalCode: '02458' } },
  aidenPark: { firstName: 'Aiden', lastName: 'Park', dateOfBirth: '2001-06-15', email: 'aiden.park@gmail.com', phoneNumber: '+12065550171', gender: 'M' },
  ethanPark: { firstName: 'Ethan', lastName: 'Park', dateOfBirth: '2001-06-15', email: 'ethan.park@gmail.com', phoneNumber: '+12065550172', gender: 'M' },
  jonObrien: { firstName: 'Jonathan', lastName: "O'Brien", dateOfBirth: '1978-12-03', email: 'jon.obrien@example.com', phoneNumber: '+17735550110', gender: 'M' },
  kateNguyen: { firstName: 'Katherine', lastName: 'Nguyen', dateOfBirth: '1988-09-27', email: 'kate.nguyen@icloud.com', phoneNumber: '+14085550165', gender: 'F', address: { line1: '4 Stevens Creek Blvd', city: 'Cupertino', state: 'CA', postalCode: '95014' } },
};

// A loyalty-program export: nicknames, typos, other formats, a plus-tagged email, a namesake
// stranger, a record with nothing usable, and someone new.
const EXPORT: Record<string, unknown>[] = [
  { 'First Name': 'Liz', 'Last Name': 'Moreno', DOB: '03/14/1985', Mobile: '(415) 555-0123' },
  { first_name: 'Maria', last_name: 'Garcia', date_of_birth: '1972-11-30', email: 'M.Garcia@Outlook.com' },
  { 'First Name': 'Emily', 'Last Name': 'Whitfeld', DOB: '02/09/1992', Phone: '617.555.0142' },
  { given_name: 'Ethan', surname: 'Park', dob: '2001-06-15', 'Email Address': 'ethan.park+glow@gmail.com' },
  { FirstName: 'Jon', LastName: 'OBrien', Birthdate: '12/03/1978', Phone: '773-555-0110' },
  { 'First Name': 'Maria', 'Last Name': 'Garcia', DOB: '07/19/1985', Phone: '(212) 555-0100' },
  { 'First Name': 'Katie', 'Last Name': 'Nguyen', 'Email Address': 'kate.nguyen@icloud.com', Zip: '95014' },
  { comment: 'walk-in, paid cash' },
  { 'First Name': 'Daniel', 'Last Name': 'Kim', DOB: '01/01/1995', Phone: '(503) 555-0147' },
];
const EXPECTED: Record<number, keyof typeof PRACTICE> = { 0: 'lizMoreno', 1: 'mariaGarcia72', 2: 'emilyWhitfield', 3: 'ethanPark', 4: 'jonObrien', 6: 'kateNguyen' };
const EXPECTED_UNMATCHED = [5, 7, 8];

for (const target of databaseTargets()) {
  describe(`POST /v1/ai/reconcile (${target.kind})`, async () => {
    const db = await migratedDatabase(target);
    const t = await startTestApp(db, { rateLimitEnabled: false });
    const app = t.app;
    const spa: TestPractice = await createTestPractice(app, 'Glow Med Spa');
    const other: TestPractice = await createTestPractice(app, 'Other Spa');
    const ids: Record<string, string> = {};
    await withPractice(app.db, spa.id, async (tx) => {
      for (const [key, patient] of Object.entries(PRACTICE)) ids[key] = await insertPatient(tx, spa.id, patient);
    });
    await encryptPlaintextPatients(app.db, app.keyring);
    const staff = spa.users.STAFF.headers;
    const post = (payload: unknown, headers: Record<string, string> = staff) =>
      app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers, payload: payload as Record<string, unknown> });

    describe('bad input is a 400 naming the field', () => {
      test('an empty data array', async () => {
        assert.deepEqual(fields(await post({ data: [] })), ['data']);
      });

      test('more than 10,000 records', async () => {
        const data = Array.from({ length: 10_001 }, () => ({ firstName: 'A' }));
        assert.deepEqual(fields(await post({ data })), ['data']);
      });

      test('items that are not objects, each reported by position', async () => {
        const got = fields(await post({ data: [{ firstName: 'Ok' }, 42, 'Jane Doe', null, ['x']] }));
        assert.deepEqual(got.sort(), ['data.1', 'data.2', 'data.3', 'data.4']);
      });

      test('a confidence outside 0.1 to 1.0, or not a number', async () => {
        for (const confidence of [0.05, 0, 1.01, 5, -1, 'high']) {
          assert.deepEqual(fields(await post({ data: [{ firstName: 'A' }], confidence })), ['confidence'], String(confidence));
        }
      });

      test('an unknown algorithm, with the allowed ones in the message', async () => {
        const error = errorOf(await post({ data: [{ firstName: 'A' }], algorithm: 'NEURAL_NET' }), 400, 'VALIDATION_ERROR');
        assert.deepEqual(error.details.map((d) => d.field), ['algorithm']);
        assert.match(error.details[0]!.message, /FUZZY_MATCH, ML_MODEL, HYBRID/);
      });

      test('missing data, data not an array, an unknown target, an unknown top-level key', async () => {
        assert.deepEqual(fields(await post({ algorithm: 'HYBRID' })), ['data']);
        assert.deepEqual(fields(await post({ data: { firstName: 'A' } })), ['data']);
        assert.deepEqual(fields(await post({ data: [{ firstName: 'A' }], target: 'INVOICES' })), ['target']);
        assert.deepEqual(fields(await post({ data: [{ firstName: 'A' }], confidance: 0.9 })), ['confidance']);
      });

      test('a fieldMapping to a field that does not exist (a typo would silently drop a column)', async () => {
        const response = await post({ data: [{ Given: 'A' }], fieldMapping: { Given: 'frist_name', Cell: 'phone', Notes: 'ignore' } });
        assert.deepEqual(fields(response), ['fieldMapping.Given']);
      });

      test('a record nested thousands of levels deep is a 400 naming it, and the breaker stays closed', async () => {
        // Copying it to a worker overflowed the stack: a 500 that counted as an engine failure, so
        // a handful of them opened the circuit for everyone.
        const nest = (levels: number) => {
          let record: Record<string, unknown> = { 'First Name': 'Liz' };
          for (let i = 1; i < levels; i++) record = { patient: record };
          return record;
        };
        const deep = `{"data":[{"firstName":"Fine"},${'{"patient":'.repeat(4_999)}{"First Name":"Liz"}${'}'.repeat(4_999)}]}`;
        for (let attempt = 0; attempt < 6; attempt++) {
          // Half of them with an Idempotency-Key, whose fingerprint walks the body too.
          const key = attempt % 2 === 0 ? { 'idempotency-key': `deep-${attempt}` } : {};
          const response = await app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: { ...staff, ...key, 'content-type': 'application/json' }, payload: deep });
          assert.deepEqual(fields(response), ['data.1']);
        }
        const wide = `{"data":[${Array.from({ length: 10_000 }, () => '{"a":[[],[],[]],"b":{"c":{}}}').join(',')}]}`;
        assert.equal(
          (await app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: { ...staff, 'content-type': 'application/json' }, payload: wide })).statusCode,
          200,
          'a wide body within the limit is accepted',
        );
        const ready = (await app.inject({ url: '/health/ready' })).json() as { checks: Record<string, { detail?: string; degraded?: boolean }> };
        assert.notEqual(ready.checks.reconciliation?.degraded, true, JSON.stringify(ready.checks.reconciliation));
        assert.equal((await post({ data: [nest(32)] })).statusCode, 200, 'a record at the nesting limit is accepted');
      });

      test('not JSON at all', async () => {
        const response = await app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: { ...staff, 'content-type': 'application/json' }, payload: '{"data": [' });
        errorOf(response, 400, 'INVALID_JSON');
      });
    });

    test('records with no usable field are reported unmatched, not refused', async () => {
      const response = await post({ data: [{}, { comment: 'nothing here' }, { 'First Name': '', Phone: '   ' }] });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.deepEqual(body.matches, []);
      assert.deepEqual(body.unmatched, [0, 1, 2]);
      assert.equal(body.confidence, 0);
    });

    test('a messy export is matched to the right patients; namesakes, relatives and twins are not confused', async () => {
      const response = await post({ data: EXPORT });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as {
        runId: string;
        matches: { recordIndex: number; entityType: string; entityId: string; confidence: number; fieldScores: Record<string, number>; candidates: { entityId: string; confidence: number }[] }[];
        unmatched: number[];
        confidence: number;
        processingTime: number;
        algorithm: string;
        target: string;
      };
      assert.equal(body.algorithm, 'HYBRID');
      assert.equal(body.target, 'PATIENTS');
      assert.ok(body.processingTime > 0);
      const got = Object.fromEntries(body.matches.map((m) => [m.recordIndex, m.entityId]));
      const want = Object.fromEntries(Object.entries(EXPECTED).map(([index, key]) => [index, ids[key]]));
      assert.deepEqual(got, want);
      assert.deepEqual(body.unmatched, EXPECTED_UNMATCHED);
      for (const match of body.matches) {
        assert.equal(match.entityType, 'PATIENT');
        assert.ok(match.confidence >= 0.8 && match.confidence <= 1);
        assert.ok(match.candidates.length <= 3);
        assert.ok(Object.keys(match.fieldScores).length > 0);
      }
      const mean = body.matches.reduce((sum, m) => sum + m.confidence, 0) / body.matches.length;
      assert.ok(Math.abs(body.confidence - mean) < 0.001);
    });

    test('every algorithm answers, and a lower threshold never returns fewer matches', async () => {
      for (const algorithm of ['FUZZY_MATCH', 'ML_MODEL', 'HYBRID']) {
        const strict = (await post({ data: EXPORT, algorithm, confidence: 0.95 })).json();
        const loose = (await post({ data: EXPORT, algorithm, confidence: 0.5 })).json();
        assert.equal(strict.algorithm, algorithm);
        assert.ok(loose.matches.length >= strict.matches.length, algorithm);
        assert.ok(strict.matches.every((m: { confidence: number }) => m.confidence >= 0.95), algorithm);
      }
    });

    test('target APPOINTMENTS: a loyalty redemption is matched to the completed visit, not a scheduled one', async () => {
      const practitioner = spa.users.PRACTITIONER.id;
      const visits = await withPractice(app.db, spa.id, async (tx) => {
        const service = (
          await tx.query<{ id: string }>(
            `INSERT INTO services (practice_id, name, category, duration_minutes, price_cents) VALUES ($1, 'Botox Cosmetic', 'Injectables', 30, 60000) RETURNING id`,
            [spa.id],
          )
        ).rows[0]!.id;
        const book = async (patient: string, start: string, status: string) =>
          (
            await tx.query<{ id: string }>(
              `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, status, price_cents)
               VALUES ($1, $2, $3, $4, $5::timestamptz, $5::timestamptz + interval '30 minutes', $6, 60000) RETURNING id`,
              [spa.id, patient, practitioner, service, start, status],
            )
          ).rows[0]!.id;
        return {
          lizCompleted: await book(ids.lizMoreno!, '2026-03-02T15:00:00Z', 'COMPLETED'),
          lizScheduled: await book(ids.lizMoreno!, '2026-04-20T15:00:00Z', 'SCHEDULED'),
          susanCompleted: await book(ids.susanWhitfield!, '2026-03-05T16:00:00Z', 'COMPLETED'),
        };
      });
      const response = await post({
        target: 'APPOINTMENTS',
        data: [
          { 'Member First Name': 'Liz', 'Member Last Name': 'Moreno', 'Redemption Date': '03/06/2026', Product: 'BOTOX', 'Reward Amount': '$40.00' },
          { 'Member First Name': 'Nobody', 'Member Last Name': 'Known', 'Redemption Date': '03/06/2026', Product: 'Juvederm' },
        ],
      });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.equal(body.target, 'APPOINTMENTS');
      assert.deepEqual(body.matches.map((m: { recordIndex: number; entityType: string; entityId: string }) => [m.recordIndex, m.entityType, m.entityId]), [[0, 'APPOINTMENT', visits.lizCompleted]]);
      assert.deepEqual(body.unmatched, [1]);
      const run = (await app.inject({ url: `/v1/ai/reconcile/${body.runId}`, headers: staff })).json();
      assert.equal(run.target, 'APPOINTMENTS');
      assert.equal(run.counts.candidates, 2, 'only COMPLETED appointments are candidates');
    });

    test('the run is stored: GET /v1/ai/reconcile/{runId} returns the same result with who and when', async () => {
      const created = (await post({ data: EXPORT, algorithm: 'ML_MODEL', confidence: 0.7, oneToOne: true })).json();
      const response = await app.inject({ url: `/v1/ai/reconcile/${created.runId}`, headers: spa.users.PRACTITIONER.headers });
      assert.equal(response.statusCode, 200, response.body);
      const run = response.json();
      assert.equal(run.runId, created.runId);
      assert.deepEqual(run.matches, created.matches);
      assert.deepEqual(run.unmatched, created.unmatched);
      assert.equal(run.algorithm, 'ML_MODEL');
      assert.equal(run.target, 'PATIENTS');
      assert.equal(run.confidenceThreshold, 0.7);
      assert.equal(run.oneToOne, true);
      assert.deepEqual(run.createdBy, { type: 'user', id: spa.users.STAFF.id });
      assert.deepEqual(run.counts, {
        records: EXPORT.length,
        matched: created.matches.length,
        unmatched: created.unmatched.length,
        candidates: Object.keys(PRACTICE).length,
      });
      assert.ok(!Number.isNaN(Date.parse(run.createdAt)));
    });

    test("practice B gets 404 for practice A's run, like an unknown or malformed id", async () => {
      const created = (await post({ data: EXPORT.slice(0, 2) })).json();
      const theirs = await app.inject({ url: `/v1/ai/reconcile/${created.runId}`, headers: other.users.ADMIN.headers });
      errorOf(theirs, 404, 'NOT_FOUND');
      errorOf(await app.inject({ url: '/v1/ai/reconcile/00000000-0000-4000-8000-000000000000', headers: staff }), 404, 'NOT_FOUND');
      errorOf(await app.inject({ url: "/v1/ai/reconcile/1' OR '1'='1", headers: staff }), 404, 'NOT_FOUND');
      // Text that can't be stored (NUL, half an emoji) is a malformed id like any other: a 404.
      errorOf(await app.inject({ url: '/v1/ai/reconcile/%00', headers: staff }), 404, 'NOT_FOUND');
      errorOf(await app.inject({ url: `/v1/ai/reconcile/${'x'.repeat(99)}${encodeURIComponent('😀')}`, headers: staff }), 404, 'NOT_FOUND');
      // The probe shows in B's audit log as a failed read naming the run asked for.
      const probes = await withPractice(app.db, other.id, (tx) =>
        tx.query<{ outcome: string; actor_id: string }>(
          "SELECT outcome, actor_id FROM audit_events WHERE action = 'reconciliation.read' AND details->>'runId' = $1",
          [created.runId],
        ),
      );
      assert.deepEqual(probes.rows, [{ outcome: 'failure', actor_id: other.users.ADMIN.id }]);
    });

    test("practice B's reconciliation never sees practice A's patients", async () => {
      const response = await post({ data: EXPORT }, other.users.ADMIN.headers);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json().matches, []);
    });

    test('the run is audited as PHI access: matched patient ids, counts, and no PHI in the details', async () => {
      const created = (await post({ data: EXPORT })).json();
      await app.inject({ url: `/v1/ai/reconcile/${created.runId}`, headers: staff });
      const events = await withPractice(app.db, spa.id, async (tx) =>
        (
          await tx.query<{ action: string; actor_id: string; resource_type: string; resource_ids: string[]; outcome: string; details: Record<string, unknown> }>(
            `SELECT action, actor_id, resource_type, resource_ids, outcome, details FROM audit_events
              WHERE action LIKE 'reconciliation.%' AND details->>'runId' = $1 ORDER BY id`,
            [created.runId],
          )
        ).rows,
      );
      assert.deepEqual(events.map((e) => e.action), ['reconciliation.run', 'reconciliation.read']);
      const [run] = events;
      assert.equal(run!.actor_id, spa.users.STAFF.id);
      assert.equal(run!.resource_type, 'patient');
      assert.equal(run!.outcome, 'success');
      assert.deepEqual([...run!.resource_ids].sort(), Object.values(EXPECTED).map((key) => ids[key]).sort());
      assert.equal(run!.details.records, EXPORT.length);
      assert.equal(run!.details.matched, Object.keys(EXPECTED).length);
      const text = JSON.stringify(events);
      for (const phi of ['Moreno', 'Garcia', 'Whitf', '555-01', '1985-03-14', '03/14/1985', 'icloud.com']) assert.ok(!text.includes(phi), phi);
      assert.ok(!t.rawLog().includes('Moreno'), 'no PHI in the logs');
    });

    describe('permissions (read:patients)', () => {
      test('STAFF (read:patients) may reconcile', async () => {
        assert.equal((await post({ data: EXPORT.slice(0, 1) })).statusCode, 200);
      });

      test('no credentials: 401', async () => {
        errorOf(await app.inject({ method: 'POST', url: '/v1/ai/reconcile', payload: { data: [{ a: 1 }] } }), 401, 'UNAUTHORIZED');
      });

      test('an API key without read:patients is refused (403), one with it is allowed', async () => {
        const makeKey = async (permissions: string[]) => {
          const response = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: spa.users.ADMIN.headers, payload: { name: `k-${permissions.join('-')}`, permissions } });
          assert.equal(response.statusCode, 201, response.body);
          return { 'x-api-key': response.json().key as string };
        };
        const scheduling = await makeKey(['read:appointments']);
        errorOf(await post({ data: EXPORT.slice(0, 1) }, scheduling), 403, 'FORBIDDEN');
        const created = (await post({ data: EXPORT.slice(0, 1) })).json();
        errorOf(await app.inject({ url: `/v1/ai/reconcile/${created.runId}`, headers: scheduling }), 403, 'FORBIDDEN');
        const reader = await makeKey(['read:patients']);
        const response = await post({ data: EXPORT.slice(0, 1) }, reader);
        assert.equal(response.statusCode, 200, response.body);
        const run = (await app.inject({ url: `/v1/ai/reconcile/${response.json().runId}`, headers: reader })).json();
        assert.equal(run.createdBy.type, 'api_key');
        // Appointments are another resource: a patients-only key can't match against them.
        const appointmentsRun = await post({ data: EXPORT.slice(0, 1), target: 'APPOINTMENTS' }, reader);
        errorOf(appointmentsRun, 403, 'FORBIDDEN');
        assert.match(appointmentsRun.json().error.message, /read:appointments/);
      });
    });

    test('ReconciliationMatch is a named schema in the OpenAPI document, used by the response', async () => {
      const doc = (await app.inject({ url: '/v1/openapi.json' })).json();
      const schema = doc.components.schemas.ReconciliationMatch;
      assert.ok(schema, 'components.schemas.ReconciliationMatch');
      assert.deepEqual(Object.keys(schema.properties).sort(), ['candidates', 'confidence', 'entityId', 'entityType', 'fieldScores', 'recordIndex']);
      const pathOf = (path: string) => doc.paths[path] as Record<string, any> | undefined;
      const operation = pathOf('/ai/reconcile')!.post;
      const ok = operation.responses['200'].content['application/json'].schema;
      assert.equal(ok.properties.matches.items.$ref, '#/components/schemas/ReconciliationMatch');
      assert.ok(operation.responses['503']);
      const body = operation.requestBody.content['application/json'].schema;
      assert.deepEqual(body.properties.algorithm.enum, ['FUZZY_MATCH', 'ML_MODEL', 'HYBRID']);
      assert.equal(body.properties.algorithm.default, 'HYBRID');
      assert.equal(body.properties.confidence.minimum, 0.1);
      assert.equal(body.properties.confidence.default, 0.8);
      assert.equal(body.properties.data.maxItems, 10_000);
      assert.ok(pathOf('/ai/reconcile/{runId}')!.get);
    });

    test('/health/ready reports the breaker CLOSED and the pool', async () => {
      const response = await app.inject({ url: '/health/ready' });
      assert.equal(response.statusCode, 200, response.body);
      const check = response.json().checks.reconciliation;
      assert.equal(check.ok, true);
      assert.equal(check.degraded, undefined);
      assert.match(check.detail, /breaker CLOSED; workers \d+\/\d+ busy/);
    });
  });
}

describe('circuit breaker around the engine (fake clock, injected failures)', async () => {
  const [first] = databaseTargets();
  const db = await migratedDatabase(first!);
  let now = 1_700_000_000_000;
  let failing = true;
  let calls = 0;
  const stub: ReconcileRunner = {
    async run(job) {
      calls += 1;
      if (failing) throw new WorkerCrashedError('injected');
      return emptyResult(job);
    },
    assertCapacity() {},
    stats: () => STATS,
    close: async () => {},
  };
  const breaker = new CircuitBreaker({ name: 'reconcile', now: () => now, monitorIntervalMs: 0, isFailure: (e) => !isLoadShedding(e) });
  const t = await startTestApp(db, { rateLimitEnabled: false }, { reconcile: { pool: stub, breaker } });
  const spa = await createTestPractice(t.app);
  const post = () => t.app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: spa.users.STAFF.headers, payload: { data: [{ firstName: 'Ann', lastName: 'Lee' }] } });

  test('engine failures are 503 AI_SERVICE_UNAVAILABLE; the 5th consecutive one opens the circuit', async () => {
    for (let i = 1; i <= 4; i += 1) {
      const response = await post();
      errorOf(response, 503, 'AI_SERVICE_UNAVAILABLE');
      assert.equal(response.headers['retry-after'], undefined, 'still CLOSED: no promise of when');
      assert.equal(breaker.state, 'CLOSED');
    }
    const fifth = await post();
    errorOf(fifth, 503, 'AI_SERVICE_UNAVAILABLE');
    assert.equal(breaker.state, 'OPEN');
    assert.equal(fifth.headers['retry-after'], '60');
    assert.equal(calls, 5);
  });

  test('while OPEN: 503 with Retry-After (seconds to the trial) and the engine is not called', async () => {
    now += 15_000;
    const response = await post();
    const error = errorOf(response, 503, 'AI_SERVICE_UNAVAILABLE');
    assert.equal(response.headers['retry-after'], '45');
    assert.match(error.message, /temporarily unavailable/);
    assert.equal(calls, 5);
  });

  test('/health/ready stays 200 while OPEN, reporting reconciliation degraded', async () => {
    const response = await t.app.inject({ url: '/health/ready' });
    assert.equal(response.statusCode, 200, response.body);
    const check = response.json().checks.reconciliation;
    assert.equal(check.ok, true);
    assert.equal(check.degraded, true);
    assert.match(check.detail, /breaker OPEN until/);
  });

  test('a failed HALF_OPEN trial reopens it for another 60 s', async () => {
    now += 45_000;
    const trial = await post();
    errorOf(trial, 503, 'AI_SERVICE_UNAVAILABLE');
    assert.equal(calls, 6);
    assert.equal(breaker.state, 'OPEN');
    assert.equal(trial.headers['retry-after'], '60');
  });

  test('a successful HALF_OPEN trial closes it: 200 again, readiness no longer degraded', async () => {
    now += 60_000;
    failing = false;
    const response = await post();
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(breaker.state, 'CLOSED');
    const check = (await t.app.inject({ url: '/health/ready' })).json().checks.reconciliation;
    assert.equal(check.degraded, undefined);
  });

  test('a failed job is audited as a failure without PHI', async () => {
    const rows = await withPractice(t.app.db, spa.id, async (tx) =>
      (await tx.query<{ outcome: string; details: Record<string, unknown> }>(
        `SELECT outcome, details FROM audit_events WHERE action = 'reconciliation.run' ORDER BY id`,
      )).rows,
    );
    assert.equal(rows.filter((r) => r.outcome === 'failure').length, 6);
    assert.equal(rows.filter((r) => r.outcome === 'success').length, 1);
    assert.equal(rows[0]!.details.reason, 'WorkerCrashedError');
    assert.ok(!JSON.stringify(rows).includes('Ann'));
  });
});

describe('the configured breaker logs its state changes in the app log', async () => {
  const [first] = databaseTargets();
  const db = await migratedDatabase(first!);
  const failingPool: ReconcileRunner = {
    run: async () => {
      throw new WorkerCrashedError('injected');
    },
    assertCapacity() {},
    stats: () => STATS,
    close: async () => {},
  };
  const base = testConfig().reconcile;
  const t = await startTestApp(db, { rateLimitEnabled: false, reconcile: { ...base, breakerFailureThreshold: 2 } }, { reconcile: { pool: failingPool } });
  const spa = await createTestPractice(t.app);

  test('RECONCILE_BREAKER_FAILURES is honoured and the opening is a warn line with the retry time', async () => {
    for (let i = 0; i < 2; i += 1) {
      await t.app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: spa.users.STAFF.headers, payload: { data: [{ firstName: 'Ann' }] } });
    }
    const third = await t.app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: spa.users.STAFF.headers, payload: { data: [{ firstName: 'Ann' }] } });
    errorOf(third, 503, 'AI_SERVICE_UNAVAILABLE');
    assert.equal(third.headers['retry-after'], '60');
    const line = t.logs.find((l) => l.msg === 'circuit breaker OPEN');
    assert.ok(line, 'a log line for the opening');
    assert.equal(line.level, 40);
    assert.equal(line.component, 'reconcile');
    assert.equal(line.from, 'CLOSED');
    assert.equal(line.to, 'OPEN');
    assert.ok(!Number.isNaN(Date.parse(String(line.retryAt))));
  });
});

describe('a saturated pool answers 503 at once (never an unbounded queue)', async () => {
  const [first] = databaseTargets();
  const db = await migratedDatabase(first!);
  // One worker that takes 400 ms per job, and room for one job to wait.
  const slowEngine = `
    const { parentPort } = require('node:worker_threads');
    parentPort.on('message', ({ id, job }) => setTimeout(() => parentPort.postMessage({ id, ok: true, elapsedMs: 400,
      result: { matches: [], unmatched: job.incoming.map((_, i) => i), confidence: 0, algorithm: job.options.algorithm, stats: { compared: 0, blocks: 0 } } }), 400));`;
  const pool = new WorkerPool<ReconcileJob, ReconcileResult>({ size: 1, queueLimit: 1, timeoutMs: 10_000, createWorker: () => new Worker(slowEngine, { eval: true }) });
  const breaker = new CircuitBreaker({ name: 'reconcile', monitorIntervalMs: 0, isFailure: (e) => !isLoadShedding(e) });
  const t = await startTestApp(db, { rateLimitEnabled: false }, { reconcile: { pool, breaker } });
  const spa = await createTestPractice(t.app);

  test('one running, one queued, the third refused with Retry-After; the breaker is not tripped', async () => {
    const send = () => t.app.inject({ method: 'POST', url: '/v1/ai/reconcile', headers: spa.users.STAFF.headers, payload: { data: [{ firstName: 'Ann' }] } });
    const responses = await Promise.all([send(), send(), send()]);
    const statuses = responses.map((r) => r.statusCode).sort();
    assert.deepEqual(statuses, [200, 200, 503]);
    const refused = responses.find((r) => r.statusCode === 503)!;
    const error = errorOf(refused, 503, 'AI_SERVICE_UNAVAILABLE');
    assert.match(error.message, /capacity/);
    assert.match(String(refused.headers['retry-after']), /^\d+$/);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal(breaker.state, 'CLOSED');
    assert.equal(breaker.snapshot().consecutiveFailures, 0);
    assert.equal(pool.stats().completed, 2);
  });
});

describe('the server keeps answering while a 10,000-record reconciliation runs', async () => {
  const [first] = databaseTargets();
  const db = await migratedDatabase(first!);
  const t = await startTestApp(db, { rateLimitEnabled: false });
  const spa = await createTestPractice(t.app);
  const split = generateSyntheticSplit(11, { practiceSize: 2000, incomingSize: 10_000 });
  const seeded = await insertPatients(t.app, spa.id, split.practice);

  test('/health answers many times before the big job finishes (the job runs on a worker thread)', async (ctx) => {
    assert.ok(seeded > 1500, `seeded ${seeded}`);
    let done = false;
    const started = performance.now();
    const job = t.app
      .inject({ method: 'POST', url: '/v1/ai/reconcile', headers: spa.users.STAFF.headers, payload: { data: split.incoming } })
      .finally(() => (done = true));
    const latencies: number[] = [];
    while (!done) {
      const sent = performance.now();
      const health = await t.app.inject({ url: '/health' });
      assert.equal(health.statusCode, 200);
      if (!done) latencies.push(performance.now() - sent);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const response = await job;
    const total = performance.now() - started;
    assert.equal(response.statusCode, 200, response.body.slice(0, 500));
    const body = response.json();
    assert.equal(body.matches.length + body.unmatched.length, 10_000);
    ctx.diagnostic(`job ${Math.round(total)} ms (processingTime ${body.processingTime} ms); /health answered ${latencies.length} times meanwhile, slowest ${Math.round(Math.max(...latencies))} ms`);
    assert.ok(latencies.length >= 5, `only ${latencies.length} /health answers during a ${Math.round(total)} ms job`);
  });
});
