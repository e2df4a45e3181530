// End-to-end benchmark of a /v2/reconciliations job over real HTTP: `npm run bench:reconcile-jobs`.
//
// A synthetic med-spa split (test/reconcile/synthetic.ts, seeded: the same figures every run) of N
// practice patients and N incoming rows: the patients are seeded with SQL, the export is written
// as a CSV and uploaded as text/csv to a real listening server (buildApp + listen, PGlite, or
// PostgreSQL when DATABASE_URL is set), the job polled until it ends. Prints the upload time, the
// job's running time, rows/s end to end, the process's peak RSS (server and client share it), and
// precision / recall of the `accepted` band against the generator's truth.
// Options: --size N (default 20000), --algorithm HYBRID.
import { encryptPlaintextPatients } from '../src/patients/encrypt-existing.js';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';
import { openBenchDatabase } from './bench-db.js';
import { withPractice } from '../src/db/scope.js';
import { createTestPractice } from '../test/helpers/identity.js';
import { generateSyntheticSplit } from '../test/reconcile/synthetic.js';
import { csvCell } from '../src/reconcile/http/export.js';

const args = process.argv.slice(2);
const option = (name: string) => { const i = args.indexOf(`--${name}`); return i === -1 ? undefined : args[i + 1]; };
const SIZE = Number(option('size') ?? 20_000);
const ALGORITHM = option('algorithm') ?? 'HYBRID';

const { db, label, drop } = await openBenchDatabase();
let peakRss = 0;
const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 100);
const base = testConfig({ logLevel: 'silent', rateLimitEnabled: false });
const app = await buildApp(testConfig({ logLevel: 'silent', rateLimitEnabled: false, reconcile: { ...base.reconcile, jobs: { ...base.reconcile.jobs, pollMs: 200 } } }), { db });
await app.listen({ port: 0, host: '127.0.0.1' });
const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
try {
  const practice = await createTestPractice(app, 'Bench Spa');
  const headers = practice.users.ADMIN.headers;
  const split = generateSyntheticSplit(20261203, { practiceSize: SIZE, incomingSize: SIZE });
  const idByOriginal = new Map<string, string>();
  await withPractice(db, practice.id, async (tx) => {
    for (let start = 0; start < split.practice.length; start += 5000) {
      const batch = split.practice.slice(start, start + 5000);
      const { rows } = await tx.query<{ id: string; original: string }>(
        `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, gender, address, notes)
         SELECT $1, r."firstName", r."lastName", r."dateOfBirth", r.email, r."phoneNumber", r.gender, r.address, r.original
           FROM jsonb_to_recordset($2::jsonb) AS r("firstName" text, "lastName" text, "dateOfBirth" date, email text, "phoneNumber" text, gender text, address jsonb, original text)
         ON CONFLICT DO NOTHING RETURNING id, notes AS original`,
        [practice.id, JSON.stringify(batch.map((p) => ({ ...p, original: p.id })))],
      );
      for (const row of rows) idByOriginal.set(row.original, row.id);
    }
  });
  // Seeded in plaintext as before migration 015 (fast): sealed as a start would.
  await encryptPlaintextPatients(db, app.keyring);
  const columns = [...new Set(split.incoming.flatMap((row) => Object.keys(row)))];
  const csv = [columns.map(csvCell).join(','), ...split.incoming.map((row) => columns.map((c) => csvCell(row[c])).join(','))].join('\r\n');

  const started = performance.now();
  const created = await fetch(`${url}/v2/reconciliations?kind=PATIENTS&algorithm=${ALGORITHM}`, { method: 'POST', headers: { ...headers, 'content-type': 'text/csv' }, body: csv });
  const createdBody = await created.text();
  if (created.status !== 202) throw new Error(`upload: ${created.status} ${createdBody.slice(0, 300)}`);
  const uploadMs = performance.now() - started;
  const { id } = JSON.parse(createdBody) as { id: string };
  let job: { status: string; counts: Record<string, number>; timings: { runningMs: number }; progress: { pairsScored: number } };
  for (;;) {
    job = (await (await fetch(`${url}/v2/reconciliations/${id}`, { headers })).json()) as typeof job;
    if (!['queued', 'running'].includes(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const totalMs = performance.now() - started;
  if (job.status !== 'succeeded') throw new Error(`job ${job.status}`);

  let tp = 0; let fp = 0; let page = 1; let truePairs = 0;
  for (const truth of split.truth) if (truth !== null && idByOriginal.has(truth)) truePairs += 1;
  for (;;) {
    const body = (await (await fetch(`${url}/v2/reconciliations/${id}/matches?band=accepted&limit=100&page=${page}`, { headers })).json()) as { data: { recordIndex: number; entityId: string }[]; pagination: { totalPages: number } };
    for (const match of body.data) {
      const truth = split.truth[match.recordIndex];
      if (truth !== null && truth !== undefined && idByOriginal.get(truth) === match.entityId) tp += 1; else fp += 1;
    }
    if (page >= body.pagination.totalPages) break;
    page += 1;
  }
  clearInterval(sampler);
  console.log(`reconciliation job, ${label}, ${ALGORITHM}, ${SIZE.toLocaleString('en-US')} incoming x ${idByOriginal.size.toLocaleString('en-US')} patients (CSV ${(csv.length / 1_048_576).toFixed(1)} MB)`);
  console.log(`  upload (202)      ${uploadMs.toFixed(0)} ms`);
  console.log(`  job running       ${job.timings.runningMs} ms (${job.progress.pairsScored.toLocaleString('en-US')} pairs scored)`);
  console.log(`  end to end        ${totalMs.toFixed(0)} ms, ${(SIZE / (totalMs / 1000)).toFixed(0)} rows/s`);
  console.log(`  bands             accepted ${job.counts.accepted}, review ${job.counts.review}, unmatched ${job.counts.unmatched}`);
  console.log(`  accepted band     precision ${(tp / Math.max(1, tp + fp)).toFixed(4)}, recall ${(tp / Math.max(1, truePairs)).toFixed(4)}`);
  console.log(`  peak RSS          ${(peakRss / 1_048_576).toFixed(0)} MB (server and client in one process; the worker thread included)`);
} finally {
  await app.close();
  await drop();
}
