// /v2/reconciliations through the HTTP API on real databases: an Allē-style members CSV uploaded,
// matched in the background, reviewed by band with readable evidence, decided, applied (member ids
// stored on the patients and used by next month's export), exported; broken files named by line and
// column; the row and byte limits; another practice kept out.
import { encryptPlaintextPatients } from '../../src/patients/encrypt-existing.js';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { waitFor } from '../helpers/process.js';

type Inject = Awaited<ReturnType<FastifyInstance['inject']>>;

const PATIENTS = [
  { firstName: 'Elizabeth', lastName: 'Moreno', dateOfBirth: '1985-03-14', email: 'liz.moreno@gmail.com', phoneNumber: '+14155550123' },
  { firstName: 'Priya', lastName: 'Raman', dateOfBirth: '1979-11-02', email: 'priya.r@outlook.com', phoneNumber: '+16505550111' },
  { firstName: 'Hannah', lastName: 'Kowalski', dateOfBirth: '1992-07-21', email: null, phoneNumber: '+12065550199' },
  { firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1990-05-01', email: 'maria.garcia90@yahoo.com', phoneNumber: '+13105550188' },
];

// An Allē-like member export: semicolons, a BOM, a quoted field with an embedded newline, a typo.
const MEMBERS_CSV =
  '\uFEFFMember ID;First Name;Last Name;Date of Birth;Email;Mobile;Notes\r\n' +
  'A-1001;Elizabeth;Moreno;03/14/1985;liz.moreno@gmail.com;(415) 555-0123;"prefers\nmornings"\r\n' +
  'A-1002;Priya;Ramen;11/02/1979;;650-555-0111;\r\n' +
  'A-1003;Jordan;Newperson;01/09/1995;jordan.new@example.com;(917) 555-0142;\r\n';

async function seed(app: FastifyInstance, practiceId: string): Promise<string[]> {
  return withPractice(app.db, practiceId, async (tx) => {
    const ids: string[] = [];
    for (const p of PATIENTS) {
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [practiceId, p.firstName, p.lastName, p.dateOfBirth, p.email, p.phoneNumber],
      );
      ids.push(rows[0]!.id);
    }
    return ids;
  }).then(async (ids) => {
    // Stored in plaintext as before migration 015; sealed as the next start would.
    await encryptPlaintextPatients(app.db, app.keyring);
    return ids;
  });
}

function errorOf(response: Inject, status: number) {
  assert.equal(response.statusCode, status, response.body);
  return (response.json() as { error: { code: string; message: string; details: { field: string; message: string }[] } }).error;
}

for (const target of databaseTargets()) {
  describe(`reconciliation jobs on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app, rawLog } = await startTestApp(db, {}, {});
    const practice = await createTestPractice(app, 'Jobs Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const admin = practice.users.ADMIN.headers;
    const patientIds = await seed(app, practice.id);

    const upload = (body: string | Buffer | Readable, query: string, headers: Record<string, string> = {}, who = admin) =>
      app.inject({ method: 'POST', url: `/v2/reconciliations?${query}`, headers: { ...who, 'content-type': 'text/csv', ...headers }, payload: body });

    const finished = async (id: string, who = admin) =>
      waitFor(`job ${id} to finish`, async () => {
        const job = (await app.inject({ url: `/v2/reconciliations/${id}`, headers: who })).json() as { status: string };
        return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
      }, { timeoutMs: 60_000, intervalMs: 100 });

    let jobId = '';

    test('a members CSV becomes a job: 202 with Location, then succeeded with counts, timings and the columns read', async () => {
      const response = await upload(MEMBERS_CSV, 'kind=PATIENTS&source=alle&confidence=0.9');
      assert.equal(response.statusCode, 202, response.body);
      const created = response.json() as { id: string; status: string; input: { delimiter: string; columns: { column: string; readAs: string | null; how: string }[] } };
      jobId = created.id;
      assert.equal(response.headers.location, `/v2/reconciliations/${jobId}`);
      assert.equal(created.input.delimiter, ';');
      const byColumn = Object.fromEntries(created.input.columns.map((c) => [c.column, c.readAs]));
      assert.equal(byColumn['Member ID'], 'memberId');
      assert.equal(byColumn['Mobile'], 'phone');
      assert.equal(byColumn['Notes'], null, 'Notes is reported as ignored');
      const job = (await finished(jobId)) as unknown as { status: string; counts: { rows: number; accepted: number; review: number; unmatched: number }; progress: { percent: number; pairsScored: number }; timings: { runningMs: number } };
      assert.equal(job.status, 'succeeded');
      assert.equal(job.counts.rows, 3);
      assert.equal(job.counts.accepted + job.counts.review + job.counts.unmatched, 3);
      assert.equal(job.progress.percent, 100);
      assert.ok(job.progress.pairsScored > 0);
    });

    test('matches by band carry the recordIndex, the candidates and evidence a person can read', async () => {
      const all = (await app.inject({ url: `/v2/reconciliations/${jobId}/matches`, headers: admin })).json() as { data: Array<{ recordIndex: number; band: string; entityId: string | null; candidates: { entityId: string; evidence: string[] }[] }>; pagination: { total: number } };
      assert.equal(all.pagination.total, 3);
      const liz = all.data.find((m) => m.recordIndex === 0)!;
      assert.equal(liz.band, 'accepted');
      assert.equal(liz.entityId, patientIds[0]);
      assert.ok(liz.candidates[0]!.evidence.includes('DOB equal'), liz.candidates[0]!.evidence.join(', '));
      assert.ok(liz.candidates[0]!.evidence.includes('phone equal'));
      const priya = all.data.find((m) => m.recordIndex === 1)!;
      assert.equal(priya.entityId, patientIds[1]);
      assert.ok(priya.candidates[0]!.evidence.includes('surname typo 1 edit'), priya.candidates[0]!.evidence.join(', '));
      const jordan = all.data.find((m) => m.recordIndex === 2)!;
      assert.equal(jordan.band, 'unmatched');
      const unmatched = (await app.inject({ url: `/v2/reconciliations/${jobId}/matches?band=unmatched`, headers: admin })).json() as { data: { recordIndex: number }[] };
      assert.deepEqual(unmatched.data.map((m) => m.recordIndex), [2]);
    });

    test('a look-alike rule sends a pair to review at the job\'s band, it does not drop it', async () => {
      // Hannah Kowalski's birth date, surname and phone under another first name and no address: the
      // model would accept it; HYBRID caps it halfway into this job's band [0.5, 0.9), for a person to decide.
      const response = await upload('First Name,Last Name,DOB,Phone\r\nXiomara,Kowalski,07/21/1992,(206) 555-0199\r\n', 'kind=PATIENTS&confidence=0.9');
      assert.equal(response.statusCode, 202, response.body);
      const id = (response.json() as { id: string }).id;
      assert.equal(((await finished(id)) as { status: string }).status, 'succeeded');
      const rows = (await app.inject({ url: `/v2/reconciliations/${id}/matches`, headers: admin })).json() as { data: { band: string; entityId: string | null; confidence: number }[] };
      assert.deepEqual(rows.data.map((m) => [m.band, m.entityId, m.confidence]), [['review', patientIds[2], 0.7]]);
    });

    test('practice B cannot read, decide on, apply, export or cancel practice A\'s job (404)', async () => {
      const intruder = other.users.ADMIN.headers;
      for (const [method, url] of [
        ['GET', `/v2/reconciliations/${jobId}`], ['GET', `/v2/reconciliations/${jobId}/matches`], ['GET', `/v2/reconciliations/${jobId}/export`],
        ['DELETE', `/v2/reconciliations/${jobId}`], ['POST', `/v2/reconciliations/${jobId}/apply`],
      ] as const) {
        errorOf(await app.inject({ method, url, headers: intruder }), 404);
      }
      errorOf(await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: intruder, payload: { band: 'review', action: 'reject' } }), 404);
      const list = (await app.inject({ url: '/v2/reconciliations', headers: intruder })).json() as { data: unknown[] };
      assert.equal(list.data.length, 0);
    });

    test('a STAFF user may read matches but not decide (write:patients)', async () => {
      errorOf(await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: practice.users.STAFF.headers, payload: { band: 'review', action: 'accept' } }), 403);
    });

    test('decisions: accept, mark new; a candidate that is not one of the row\'s is refused; every decision audited', async () => {
      const bad = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: admin, payload: { decisions: [{ recordIndex: 1, action: 'choose', entityId: patientIds[3] }] } });
      assert.equal(errorOf(bad, 422).code, 'INVALID_DECISION');
      const ok = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: admin, payload: { decisions: [{ recordIndex: 1, action: 'accept' }, { recordIndex: 2, action: 'new' }] } });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.deepEqual(ok.json(), { decided: 2, recordIndexes: [1, 2] });
      const audited = await withPractice(app.db, practice.id, (tx) => tx.query<{ actor_id: string }>(`SELECT actor_id FROM audit_events WHERE action = 'reconciliation.decision'`));
      assert.equal(audited.rows[0]!.actor_id, practice.users.ADMIN.id);
      const row = (await app.inject({ url: `/v2/reconciliations/${jobId}/matches?band=${'review'}`, headers: admin })).json() as { data: { decidedBy: { id: string } | null }[] };
      for (const m of row.data) assert.equal(m.decidedBy?.id, practice.users.ADMIN.id);
    });

    test('apply stores member ids in externalIds (visible in v1 and v2) and creates the new patient through the patient rules', async () => {
      const applied = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/apply`, headers: admin });
      assert.equal(applied.statusCode, 200, applied.body);
      const result = applied.json() as { linked: number; created: number; failed: number; rows: { recordIndex: number; entityId: string }[] };
      assert.equal(result.linked, 2, applied.body);
      assert.equal(result.created, 1, applied.body);
      const liz = (await app.inject({ url: `/v2/patients/${patientIds[0]}`, headers: admin })).json() as { externalIds: Record<string, string> };
      assert.deepEqual(liz.externalIds, { alle: 'A-1001' });
      const lizV1 = (await app.inject({ url: `/v1/patients/${patientIds[0]}`, headers: admin })).json() as { externalIds: Record<string, string> };
      assert.deepEqual(lizV1.externalIds, { alle: 'A-1001' });
      const createdId = result.rows.find((r) => r.recordIndex === 2)!.entityId;
      const jordan = (await app.inject({ url: `/v1/patients/${createdId}`, headers: admin })).json() as { firstName: string; lastName: string; dateOfBirth: string; phoneNumber: string; externalIds: Record<string, string> };
      assert.deepEqual([jordan.firstName, jordan.lastName, jordan.dateOfBirth, jordan.phoneNumber], ['Jordan', 'Newperson', '1995-01-09', '+19175550142']);
      assert.deepEqual(jordan.externalIds, { alle: 'A-1003' });
    });

    test('a member id belongs to one patient per practice and source (the database refuses a second)', async () => {
      const response = await app.inject({ method: 'PATCH', url: `/v1/patients/${patientIds[3]}`, headers: admin, payload: { externalIds: { alle: 'A-1001' } } });
      assert.ok(response.statusCode === 409 || response.statusCode === 400, response.body);
      const maria = (await app.inject({ url: `/v1/patients/${patientIds[3]}`, headers: admin })).json() as { externalIds: Record<string, string> };
      assert.deepEqual(maria.externalIds, {});
    });

    test('next month: the member id is a blocking key, so a renamed member still matches her patient exactly', async () => {
      const nextMonth = 'Member ID,First Name,Last Name\nA-1001,Beth,Moreno-Smith\n';
      const response = await upload(nextMonth, 'kind=PATIENTS&source=alle');
      assert.equal(response.statusCode, 202, response.body);
      const { id } = response.json() as { id: string };
      await finished(id);
      const matches = (await app.inject({ url: `/v2/reconciliations/${id}/matches`, headers: admin })).json() as { data: { entityId: string | null; candidates: { evidence: string[] }[] }[] };
      assert.equal(matches.data[0]!.entityId, patientIds[0]);
      assert.ok(matches.data[0]!.candidates[0]!.evidence.includes('member id already linked to this patient'));
      // A whole band decided at once.
      const bulk = await app.inject({ method: 'POST', url: `/v2/reconciliations/${id}/decisions`, headers: admin, payload: { band: 'accepted', action: 'reject' } });
      assert.equal(bulk.statusCode, 200, bulk.body);
      assert.deepEqual(bulk.json(), { decided: 1, recordIndexes: [0] });
      const undecided = (await app.inject({ url: `/v2/reconciliations/${id}/matches?undecided=true`, headers: admin })).json() as { pagination: { total: number } };
      assert.equal(undecided.pagination.total, 0);
    });

    test('export: the decisions as CSV with the file\'s own columns, and the exceptions as JSON', async () => {
      const csv = await app.inject({ url: `/v2/reconciliations/${jobId}/export`, headers: admin });
      assert.equal(csv.statusCode, 200, csv.body);
      assert.match(String(csv.headers['content-type']), /text\/csv/);
      const lines = csv.body.replace(/^\uFEFF/, '').trim().split('\r\n');
      assert.match(lines[0]!, /^recordIndex,band,confidence,/);
      assert.match(lines[0]!, /file: Member ID/);
      assert.equal(lines.length, 1 + 3, 'header and three rows (the embedded newline in Notes stays inside its quoted field)');
      const json = (await app.inject({ url: `/v2/reconciliations/${jobId}/export?format=json&rows=exceptions`, headers: admin })).json() as { rows: unknown[] };
      assert.ok(Array.isArray(json.rows));
    });

    test('JSON and multipart uploads are accepted too', async () => {
      const json = await app.inject({ method: 'POST', url: '/v2/reconciliations?kind=PATIENTS', headers: { ...admin, 'content-type': 'application/json' }, payload: [{ firstName: 'Hannah', lastName: 'Kowalski', phone: '206-555-0199' }] });
      assert.equal(json.statusCode, 202, json.body);
      const boundary = '----medspa';
      const body = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="members.csv"\r\nContent-Type: text/csv\r\n\r\nFirst Name\tLast Name\tPhone\r\nHannah\tKowalski\t206-555-0199\r\n\r\n--${boundary}--\r\n`;
      const multipart = await app.inject({ method: 'POST', url: '/v2/reconciliations?kind=PATIENTS', headers: { ...admin, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: body });
      assert.equal(multipart.statusCode, 202, multipart.body);
      const job = multipart.json() as { input: { fileName: string; delimiter: string } };
      assert.deepEqual([job.input.fileName, job.input.delimiter], ['members.csv', '\t']);
      await finished((json.json() as { id: string }).id);
      await finished((multipart.json() as { id: string }).id);
    });

    test('Windows-1252 bytes are detected, or read as declared', async () => {
      const bytes = Buffer.concat([Buffer.from('First Name,Last Name,Phone\n'), Buffer.from([0x5a, 0x6f, 0xeb]), Buffer.from(',Kowalski,206-555-0199\n')]);
      const detected = await upload(bytes, 'kind=PATIENTS');
      assert.equal(detected.statusCode, 202, detected.body);
      assert.equal((detected.json() as { input: { encoding: string } }).input.encoding, 'windows-1252');
      await finished((detected.json() as { id: string }).id);
    });

    test('broken CSVs are refused naming the line and column: unterminated quote, wrong column count, bad encoding', async () => {
      const quote = errorOf(await upload('First Name,Last Name\nAnna,Lee\n"Bo,Li\nCy,Do\n', 'kind=PATIENTS'), 400);
      assert.equal(quote.code, 'INVALID_FILE');
      assert.match(quote.message, /line 3, column "First Name".*never closed/);
      const count = errorOf(await upload('First Name,Last Name\nAnna,Lee\nBo\nCy,Do\n', 'kind=PATIENTS'), 400);
      assert.match(count.message, /line 3: has 1 fields where the header has 2/);
      const encoding = errorOf(await upload(Buffer.concat([Buffer.from('First Name,Last Name\nAnna,Lee\n'), Buffer.from([0x5a, 0x6f, 0xeb]), Buffer.from(',Li\n')]), 'kind=PATIENTS&charset=utf-8'), 400);
      assert.match(encoding.message, /not valid UTF-8 at line 3, column 3/);
      const jobs = (await app.inject({ url: '/v2/reconciliations?status=queued', headers: admin })).json() as { data: unknown[] };
      assert.equal(jobs.data.length, 0, 'a refused file leaves no job behind');
    });

    test('onRowError=skip reports the bad rows on the job and processes the others', async () => {
      const response = await upload('First Name,Last Name,Phone\nHannah,Kowalski,206-555-0199\nBo\nMaria,Garcia,310-555-0188\n', 'kind=PATIENTS&onRowError=skip');
      assert.equal(response.statusCode, 202, response.body);
      const job = response.json() as { id: string; counts: { rows: number; badRows: number }; input: { badRows: { line: number; message: string }[] } };
      assert.equal(job.counts.rows, 2);
      assert.equal(job.counts.badRows, 1);
      assert.equal(job.input.badRows[0]!.line, 3);
      await finished(job.id);
    });

    test('more than 200,000 data rows is refused with 413 (file generated here)', async () => {
      const rows = Array.from({ length: 200_001 }, (_, i) => `P${i},Lee`).join('\n');
      const response = await upload(`First Name,Last Name\n${rows}\n`, 'kind=PATIENTS');
      assert.equal(errorOf(response, 413).code, 'PAYLOAD_TOO_LARGE');
      assert.match(errorOf(response, 413).message, /200,000 data rows/);
    });

    test('a file over 100 MB is refused with 413 while it streams (no Content-Length)', async () => {
      const line = `${'x'.repeat(10_000)},Lee\n`;
      let sent = 0;
      const stream = new Readable({
        read() {
          if (sent > 101 * 1024 * 1024) return this.push(null);
          sent += line.length;
          this.push(sent === line.length ? `First Name,Last Name\n${line}` : line);
        },
      });
      const response = await upload(stream, 'kind=PATIENTS');
      assert.equal(errorOf(response, 413).code, 'PAYLOAD_TOO_LARGE');
      assert.match(errorOf(response, 413).message, /100 MB/);
    });

    test('DELETE cancels a queued job; a finished one is a 409', async () => {
      errorOf(await app.inject({ method: 'DELETE', url: `/v2/reconciliations/${jobId}`, headers: admin }), 409);
    });

    test('uploaded rows are stored sealed: no name from the file is readable in the database', async () => {
      const dump = await withPractice(app.db, practice.id, (tx) => tx.query<{ sealed: string }>(`SELECT sealed FROM reconciliation_job_chunks`));
      assert.ok(dump.rows.length > 0);
      for (const row of dump.rows) assert.doesNotMatch(row.sealed, /Moreno|Ramen|Newperson/);
      assert.doesNotMatch(rawLog(), /Newperson|jordan\.new/);
    });
  });
}

describe('the job queue of a practice', async () => {
  const target = databaseTargets()[0]!;
  const db = await migratedDatabase(target);
  // No runner on this instance: jobs stay queued, as behind a busy one.
  const base = (await import('../../src/config.js')).testConfig();
  const { app } = await startTestApp(db, { reconcile: { ...base.reconcile, jobs: { ...base.reconcile.jobs, enabled: false, queueLimit: 2 } } });
  const practice = await createTestPractice(app, 'Queue Spa');
  const admin = practice.users.ADMIN.headers;
  const upload = () => app.inject({ method: 'POST', url: '/v2/reconciliations?kind=PATIENTS', headers: { ...admin, 'content-type': 'text/csv' }, payload: 'First Name,Last Name\nAna,Reyes\n' });

  test('a full queue is 503 with Retry-After; DELETE cancels a queued job and frees its place', async () => {
    const one = await upload();
    assert.equal(one.statusCode, 202, one.body);
    assert.equal((await upload()).statusCode, 202);
    const full = await upload();
    assert.equal(errorOf(full, 503).code, 'SERVICE_UNAVAILABLE');
    assert.ok(Number(full.headers['retry-after']) >= 1);
    const { id } = one.json() as { id: string };
    const cancelled = await app.inject({ method: 'DELETE', url: `/v2/reconciliations/${id}`, headers: admin });
    assert.equal(cancelled.statusCode, 200, cancelled.body);
    assert.equal((cancelled.json() as { status: string }).status, 'cancelled');
    const chunks = await withPractice(app.db, practice.id, (tx) => tx.query('SELECT 1 FROM reconciliation_job_chunks WHERE job_id = $1', [id]));
    assert.equal(chunks.rows.length, 0, 'the uploaded rows of a cancelled job are deleted');
    assert.equal((await upload()).statusCode, 202);
  });

  test('matches of a job that has not run yet: 409 JOB_NOT_READY', async () => {
    const list = (await app.inject({ url: '/v2/reconciliations?status=queued', headers: admin })).json() as { data: { id: string }[]; pagination: { total: number } };
    assert.equal(list.pagination.total, 2);
    assert.equal(errorOf(await app.inject({ url: `/v2/reconciliations/${list.data[0]!.id}/matches`, headers: admin }), 409).code, 'JOB_NOT_READY');
  });
});
