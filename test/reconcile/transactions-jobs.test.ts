// TRANSACTIONS jobs through the HTTP API on real databases: a redemptions file and a sales file
// uploaded as multipart, matched in the background, reviewed with readable evidence, decided,
// applied (the accepted links stay in the job; no patient changes), exported with the unmatched
// sales; redemptions alone matched against the practice's own completed appointments; another
// practice kept out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { withPractice } from '../../src/db/scope.js';
import { encryptPlaintextPatients } from '../../src/patients/encrypt-existing.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { waitFor } from '../helpers/process.js';

// An Allē-style redemptions export and a POS sales export of made-up clients.
const REDEMPTIONS_CSV =
  'Redemption ID,Redemption Date,Member Name,Product,Reward Amount\r\n' +
  'R-1,2026-03-05,Maria Garcia,BOTOX Cosmetic,$120.00\r\n' +
  'R-2,2026-03-09,Ada Okafor,JUVÉDERM VOLUMA XC,$75.00\r\n' +
  'R-3,2026-03-01,Hana Lee,LATISSE,$33.00\r\n';
const SALES_CSV =
  'Invoice #,Date,Client,Item,Amount\r\n' +
  'INV-1001,03/02/2026,"Garcia, Maria",onabotulinumtoxinA 40u,600.00\r\n' +
  'INV-1002,03/02/2026,"Okafor, Ada",HA filler - Juvederm Voluma 1 syr,800.00\r\n' +
  'INV-1003,03/20/2026,"Lee, Hana",bimatoprost 0.03% 5ml,165.00\r\n' +
  'INV-1004,03/21/2026,"Park, Zoe",Hydrafacial,250.00\r\n';

function multipart(parts: Record<string, string>): { body: string; contentType: string } {
  const boundary = '----medspa-txn';
  const body = Object.entries(parts)
    .map(([field, content]) => `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${field}.csv"\r\nContent-Type: text/csv\r\n\r\n${content}\r\n`)
    .join('') + `--${boundary}--\r\n`;
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

interface MatchRow { recordIndex: number; band: string; entityId: string | null; confidence: number; candidates: { entityId: string; evidence: string[] }[]; decision: string | null }

for (const target of databaseTargets()) {
  describe(`TRANSACTIONS jobs on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app, rawLog } = await startTestApp(db, {}, {});
    const practice = await createTestPractice(app, 'Txn Spa');
    const other = await createTestPractice(app, 'Other Txn Spa');
    const admin = practice.users.ADMIN.headers;

    const post = (parts: Record<string, string>, query = 'kind=TRANSACTIONS') => {
      const { body, contentType } = multipart(parts);
      return app.inject({ method: 'POST', url: `/v2/reconciliations?${query}`, headers: { ...admin, 'content-type': contentType }, payload: body });
    };
    const finished = async (id: string) =>
      waitFor(`job ${id} to finish`, async () => {
        const job = (await app.inject({ url: `/v2/reconciliations/${id}`, headers: admin })).json() as { status: string };
        return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
      }, { timeoutMs: 60_000, intervalMs: 100 });
    const matchesOf = async (id: string) => ((await app.inject({ url: `/v2/reconciliations/${id}/matches`, headers: admin })).json() as { data: MatchRow[] }).data;

    let jobId = '';

    test('two CSV files as multipart (redemptions, sales) become a job that succeeds, with both files\' columns', async () => {
      const response = await post({ redemptions: REDEMPTIONS_CSV, sales: SALES_CSV });
      assert.equal(response.statusCode, 202, response.body);
      const created = response.json() as { id: string; kind: string; input: { columns: { column: string; readAs: string | null }[]; sales: { source: string; rows: number; columns: { column: string; readAs: string | null }[] } } };
      jobId = created.id;
      assert.equal(created.kind, 'TRANSACTIONS');
      assert.equal(created.input.sales.source, 'file');
      assert.equal(created.input.sales.rows, 4);
      const sales = Object.fromEntries(created.input.sales.columns.map((c) => [c.column, c.readAs]));
      assert.deepEqual(sales, { 'Invoice #': 'transactionId', Date: 'serviceDate', Client: 'fullName', Item: 'service', Amount: 'amount' });
      const redemptions = Object.fromEntries(created.input.columns.map((c) => [c.column, c.readAs]));
      assert.equal(redemptions['Reward Amount'], 'amount');
      assert.equal(redemptions['Redemption Date'], 'serviceDate');
      const job = (await finished(jobId)) as unknown as { status: string; counts: { rows: number; accepted: number; unmatched: number; candidates: number } };
      assert.equal(job.status, 'succeeded', JSON.stringify(job));
      assert.equal(job.counts.rows, 3);
      assert.equal(job.counts.candidates, 4);
    });

    test('matches: each redemption row with its sale (the invoice number) and the evidence in words; a redemption before any sale is unmatched', async () => {
      const rows = await matchesOf(jobId);
      const botox = rows.find((r) => r.recordIndex === 0)!;
      assert.equal(botox.band, 'accepted');
      assert.equal(botox.entityId, 'INV-1001');
      assert.deepEqual(botox.candidates[0]!.evidence.slice(0, 3), ['amount 20% of sale $600.00', 'posted 3 days after sale', 'product Botox Cosmetic = onabotulinumtoxinA']);
      const filler = rows.find((r) => r.recordIndex === 1)!;
      assert.equal(filler.entityId, 'INV-1002');
      assert.ok(filler.candidates[0]!.evidence.includes('fixed $75.00 reward on sale $800.00'), filler.candidates[0]!.evidence.join('; '));
      const latisse = rows.find((r) => r.recordIndex === 2)!;
      assert.equal(latisse.band, 'unmatched', 'dated 2026-03-01, before the only Latisse sale');
    });

    test('practice B cannot read, decide on, apply or export practice A\'s transactions job (404)', async () => {
      const intruder = other.users.ADMIN.headers;
      for (const [method, url] of [
        ['GET', `/v2/reconciliations/${jobId}`], ['GET', `/v2/reconciliations/${jobId}/matches`],
        ['GET', `/v2/reconciliations/${jobId}/export?rows=unmatched-sales`], ['POST', `/v2/reconciliations/${jobId}/apply`],
      ] as const) {
        const response = await app.inject({ method, url, headers: intruder });
        assert.equal(response.statusCode, 404, `${method} ${url}: ${response.body}`);
      }
      const decide = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: intruder, payload: { decisions: [{ recordIndex: 0, action: 'reject' }] } });
      assert.equal(decide.statusCode, 404, decide.body);
    });

    test('decisions: reject the filler link; choosing a sale that is not a candidate is refused; apply keeps the links in the job', async () => {
      const bad = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: admin, payload: { decisions: [{ recordIndex: 0, action: 'choose', entityId: 'INV-1004' }] } });
      assert.equal(bad.statusCode, 422, bad.body);
      const newPatient = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: admin, payload: { decisions: [{ recordIndex: 2, action: 'new' }] } });
      assert.equal(newPatient.statusCode, 422, 'new is for PATIENTS jobs');
      const ok = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/decisions`, headers: admin, payload: { decisions: [{ recordIndex: 1, action: 'reject' }] } });
      assert.equal(ok.statusCode, 200, ok.body);
      const applied = await app.inject({ method: 'POST', url: `/v2/reconciliations/${jobId}/apply`, headers: admin });
      assert.equal(applied.statusCode, 200, applied.body);
      const result = applied.json() as { linked: number; created: number; rows: { recordIndex: number; entityId: string | null }[] };
      assert.deepEqual([result.linked, result.created], [0, 0], 'no patient is changed');
      assert.deepEqual(result.rows.map((r) => [r.recordIndex, r.entityId]), [[0, 'INV-1001'], [1, null]]);
    });

    test('export: the redemptions with their decisions as CSV, and the unmatched sales (the rejected one\'s sale included)', async () => {
      const csv = await app.inject({ url: `/v2/reconciliations/${jobId}/export`, headers: admin });
      assert.equal(csv.statusCode, 200, csv.body);
      const lines = csv.body.replace(/^\uFEFF/, '').trim().split('\r\n');
      assert.equal(lines.length, 4);
      assert.match(lines[1]!, /^0,accepted,[0-9.]+,INV-1001,/);
      const sales = (await app.inject({ url: `/v2/reconciliations/${jobId}/export?rows=unmatched-sales&format=json`, headers: admin })).json() as { sales: { entityId: string }[] };
      assert.deepEqual(sales.sales.map((s) => s.entityId), ['INV-1002', 'INV-1003', 'INV-1004']);
      const salesCsv = await app.inject({ url: `/v2/reconciliations/${jobId}/export?rows=unmatched-sales`, headers: admin });
      assert.match(salesCsv.body.replace(/^\uFEFF/, '').split('\r\n')[0]!, /^saleIndex,entityId,sale: Invoice #,sale: Date,/);
    });

    test('the sales side: every sale with the redemptions linked to it; linked=false lists the unmatched sales', async () => {
      const all = (await app.inject({ url: `/v2/reconciliations/${jobId}/sales`, headers: admin })).json() as { data: { saleIndex: number; entityId: string; linkedBy: number[]; row: Record<string, string> }[]; pagination: { total: number } };
      assert.equal(all.pagination.total, 4);
      assert.deepEqual(all.data[0], { saleIndex: 0, entityId: 'INV-1001', linkedBy: [0], row: { 'Invoice #': 'INV-1001', Date: '03/02/2026', Client: 'Garcia, Maria', Item: 'onabotulinumtoxinA 40u', Amount: '600.00' } });
      const unmatched = (await app.inject({ url: `/v2/reconciliations/${jobId}/sales?linked=false&limit=2`, headers: admin })).json() as { data: { entityId: string }[]; pagination: { total: number; totalPages: number } };
      assert.deepEqual(unmatched.data.map((s) => s.entityId), ['INV-1002', 'INV-1003']);
      assert.deepEqual([unmatched.pagination.total, unmatched.pagination.totalPages], [3, 2]);
      const intruder = await app.inject({ url: `/v2/reconciliations/${jobId}/sales`, headers: other.users.ADMIN.headers });
      assert.equal(intruder.statusCode, 404, 'another practice cannot list the sales either');
    });

    test('a sales file without an amount column is a 400 naming what is missing', async () => {
      const response = await post({ redemptions: REDEMPTIONS_CSV, sales: 'Invoice #,Date,Client\r\nINV-1,03/02/2026,Ana\r\n' });
      assert.equal(response.statusCode, 400, response.body);
      assert.match((response.json() as { error: { message: string } }).error.message, /sales file needs an amount column/);
    });

    test('redemptions alone are matched against the practice\'s own completed appointments at their charged price', async () => {
      const appointmentId = await withPractice(app.db, practice.id, async (tx) => {
        const patient = await tx.query<{ id: string }>(`INSERT INTO patients (practice_id, first_name, last_name, date_of_birth) VALUES ($1, 'Maria', 'Garcia', '1980-05-14') RETURNING id`, [practice.id]);
        const service = await tx.query<{ id: string }>(`INSERT INTO services (practice_id, name, category, duration_minutes, price_cents) VALUES ($1, 'Botox - Forehead Lines', 'Injectables', 30, 65000) RETURNING id`, [practice.id]);
        const appointment = await tx.query<{ id: string }>(
          `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, status, price_cents)
           VALUES ($1, $2, $3, $4, '2026-03-02T17:00:00Z', '2026-03-02T17:30:00Z', 'COMPLETED', 60000) RETURNING id`,
          [practice.id, patient.rows[0]!.id, practice.users.ADMIN.id, service.rows[0]!.id],
        );
        return appointment.rows[0]!.id;
      });
      // The patient was stored in plaintext, as before migration 015: sealed as the next start would.
      await encryptPlaintextPatients(app.db, app.keyring);
      const response = await post({ redemptions: REDEMPTIONS_CSV });
      assert.equal(response.statusCode, 202, response.body);
      const created = response.json() as { id: string; input: { sales: { source: string } } };
      assert.equal(created.input.sales.source, 'practice');
      const job = (await finished(created.id)) as { status: string };
      assert.equal(job.status, 'succeeded', JSON.stringify(job));
      const botox = (await matchesOf(created.id)).find((r) => r.recordIndex === 0)!;
      assert.equal(botox.entityId, appointmentId);
      assert.equal(botox.band, 'accepted');
      assert.match(botox.candidates[0]!.evidence.join('; '), /amount 20% of sale \$600\.00; posted 3 days after sale; product Botox Cosmetic = Botox/);
    });

    test('the uploaded sales are stored sealed and never logged', async () => {
      const dump = await withPractice(app.db, practice.id, (tx) => tx.query<{ sealed: string }>(`SELECT sealed FROM reconciliation_job_chunks WHERE part = 'practice_input'`));
      assert.ok(dump.rows.length > 0);
      for (const row of dump.rows) assert.doesNotMatch(row.sealed, /Okafor|Garcia/);
      assert.doesNotMatch(rawLog(), /Okafor/);
    });
  });
}
