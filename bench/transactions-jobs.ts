// End-to-end benchmark of a TRANSACTIONS job over real HTTP: `npm run bench:transactions-jobs`.
//
// Seeded redemptions and sales (bench/transactions-data.ts) written as two CSV files and uploaded
// as multipart (`redemptions`, `sales`) to a real listening server (buildApp + listen, PGlite, or
// PostgreSQL when DATABASE_URL is set); the job is polled until it ends and its export read back.
// The sales file is cut to --size rows (the upload limit is 200,000 a file): redemptions whose sale
// was cut have no sale in the file. Prints the upload time, the job's running time, end-to-end
// time, peak RSS (server, client and worker share the process), and precision / recall / F1 of the
// accepted band. Options: --size N (default 200000).
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';
import { csvCell } from '../src/reconcile/http/export.js';
import { createTestPractice } from '../test/helpers/identity.js';
import { openBenchDatabase } from './bench-db.js';
import { generateTransactions, scoreTransactionLinks } from './transactions-data.js';

const args = process.argv.slice(2);
const option = (name: string) => { const i = args.indexOf(`--${name}`); return i === -1 ? undefined : args[i + 1]; };
const SIZE = Number(option('size') ?? 200_000);

function toCsv(rows: readonly Record<string, string>[]): string {
  const columns = Object.keys(rows[0] ?? {});
  return [columns.map(csvCell).join(','), ...rows.map((row) => columns.map((c) => csvCell(row[c])).join(','))].join('\r\n') + '\r\n';
}

const { db, label, drop } = await openBenchDatabase();
let peakRss = 0;
const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 100);
const base = testConfig({ logLevel: 'silent', rateLimitEnabled: false });
const app = await buildApp(testConfig({
  logLevel: 'silent', rateLimitEnabled: false,
  reconcile: { ...base.reconcile, jobs: { ...base.reconcile.jobs, pollMs: 200, timeoutMs: 15 * 60_000 } },
}), { db });
await app.listen({ port: 0, host: '127.0.0.1' });
const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
try {
  const practice = await createTestPractice(app, 'Bench Txn Spa');
  const headers = practice.users.ADMIN.headers;
  const split = generateTransactions(20261204, { redemptions: SIZE, sales: SIZE });
  const sales = split.sales.slice(0, SIZE);
  const truth = split.truth.map((sale) => (sale !== null && sale < SIZE ? sale : null));
  const redemptionsCsv = toCsv(split.redemptions);
  const salesCsv = toCsv(sales);
  const form = new FormData();
  form.append('redemptions', new Blob([redemptionsCsv], { type: 'text/csv' }), 'redemptions.csv');
  form.append('sales', new Blob([salesCsv], { type: 'text/csv' }), 'sales.csv');

  const started = performance.now();
  const created = await fetch(`${url}/v2/reconciliations?kind=TRANSACTIONS`, { method: 'POST', headers, body: form });
  const createdBody = await created.text();
  if (created.status !== 202) throw new Error(`upload: ${created.status} ${createdBody.slice(0, 300)}`);
  const uploadMs = performance.now() - started;
  const { id } = JSON.parse(createdBody) as { id: string };
  let job: { status: string; error: unknown; counts: Record<string, number>; timings: { runningMs: number }; progress: { phase: string; pairsScored: number } };
  const phases: [string, number][] = [];
  for (;;) {
    job = (await (await fetch(`${url}/v2/reconciliations/${id}`, { headers })).json()) as typeof job;
    if (phases.at(-1)?.[0] !== job.progress.phase) phases.push([job.progress.phase, performance.now()]);
    if (!['queued', 'running'].includes(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const totalMs = performance.now() - started;
  if (job.status !== 'succeeded') throw new Error(`job ${job.status}: ${JSON.stringify(job.error)}`);

  const exported = (await (await fetch(`${url}/v2/reconciliations/${id}/export?format=json`, { headers })).json()) as { rows: { recordIndex: number; band: string; matchedEntityId: string | null }[] };
  const saleByInvoice = new Map(sales.map((sale, index) => [sale['Invoice #']!, index]));
  const accepted = new Map(exported.rows.filter((row) => row.band === 'accepted' && row.matchedEntityId !== null).map((row) => [row.recordIndex, saleByInvoice.get(row.matchedEntityId!)!]));
  const score = scoreTransactionLinks(accepted, truth);
  clearInterval(sampler);
  const mb = (text: string) => (Buffer.byteLength(text) / 1_048_576).toFixed(1);
  console.log(`TRANSACTIONS job, ${label}, ${split.redemptions.length.toLocaleString('en-US')} redemptions (CSV ${mb(redemptionsCsv)} MB) x ${sales.length.toLocaleString('en-US')} sales (CSV ${mb(salesCsv)} MB)`);
  console.log(`  upload (202)      ${uploadMs.toFixed(0)} ms`);
  console.log(`  job running       ${job.timings.runningMs} ms (${job.progress.pairsScored.toLocaleString('en-US')} pairs scored)`);
  console.log(`  phases            ${phases.map(([phase, at], i) => `${phase} ${(((phases[i + 1]?.[1] ?? performance.now()) - at) / 1000).toFixed(1)} s`).join(', ')} (seen by polling every 250 ms; done: until the export was read)`);
  console.log(`  end to end        ${totalMs.toFixed(0)} ms, ${(split.redemptions.length / (totalMs / 1000)).toFixed(0)} redemptions/s`);
  console.log(`  bands             accepted ${job.counts.accepted}, review ${job.counts.review}, unmatched ${job.counts.unmatched}`);
  console.log(`  accepted band     precision ${score.precision.toFixed(3)}, recall ${score.recall.toFixed(3)}, F1 ${score.f1.toFixed(3)}`);
  console.log(`  peak RSS          ${(peakRss / 1_048_576).toFixed(0)} MB (server, client and the worker thread in one process)`);
} finally {
  clearInterval(sampler);
  await app.close();
  await drop();
}
