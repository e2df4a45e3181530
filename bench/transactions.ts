// TRANSACTIONS matcher benchmark: `npm run bench:transactions` (not part of `npm test`).
//
// Seeded redemptions and sales from bench/transactions-data.ts, matched by the engine alone (one
// thread, no HTTP, no database), at each size given (default 10,000 and 200,000 redemptions, with
// as many sales). Prints precision / recall / F1 of the links at the default confidence (0.8) and
// of the rows at or above the review floor (0.5), the recall where both files name the patient, the
// review share, the time and the heap.
// Options: --sizes 10000,200000   --seed 20261204
import { reconcileTransactions } from '../src/reconcile/engine/transactions.js';
import { generateTransactions, scoreTransactionLinks } from './transactions-data.js';

const args = process.argv.slice(2);
const option = (name: string) => { const i = args.indexOf(`--${name}`); return i === -1 ? undefined : args[i + 1]; };
const SIZES = (option('sizes') ?? '10000,200000').split(',').map(Number);
const SEED = Number(option('seed') ?? 20261204);

const f = (x: number) => x.toFixed(3);
console.log(`TRANSACTIONS matcher, seed ${SEED}, Node ${process.version}`);
console.log('| redemptions x sales | accepted (>= 0.8) P / R / F1 | >= 0.5 P / R / F1 | recall, both sides named | review share | pairs scored | time (CPU) | redemptions/s | heap |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const size of SIZES) {
  const split = generateTransactions(SEED, { redemptions: size, sales: size });
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const result = reconcileTransactions(split.redemptions, split.sales, { algorithm: 'HYBRID', confidence: 0.5 });
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const heap = process.memoryUsage().heapUsed - heapBefore;
  const saleIndex = new Map(result.saleIds.map((id, i) => [id, i]));
  const links = (floor: number) => new Map(result.matches.filter((m) => m.confidence >= floor).map((m) => [m.recordIndex, saleIndex.get(m.entityId)!]));
  const accepted = scoreTransactionLinks(links(0.8), split.truth);
  const floor = scoreTransactionLinks(links(0.5), split.truth);
  const review = result.matches.filter((m) => m.confidence < 0.8).length / split.redemptions.length;
  // Where both sides name the patient (the rest can only go by amount, product and date).
  const named = split.truth.map((sale, i) => (sale !== null && split.redemptions[i]!['Member Name'] !== '' && split.sales[sale]!.Client !== '' ? sale : null));
  const namedLinks = new Map([...links(0.8)].filter(([row]) => split.redemptions[row]!['Member Name'] !== ''));
  const namedRecall = scoreTransactionLinks(new Map([...namedLinks].filter(([row]) => named[row] !== null)), named).recall;
  console.log(`| ${size.toLocaleString('en-US')} x ${split.sales.length.toLocaleString('en-US')} | ${f(accepted.precision)} / ${f(accepted.recall)} / ${f(accepted.f1)} | ${f(floor.precision)} / ${f(floor.recall)} / ${f(floor.f1)} | ${f(namedRecall)} | ${(100 * review).toFixed(1)}% | ${result.stats.compared.toLocaleString('en-US')} | ${(ms / 1000).toFixed(1)} s (${cpuSeconds.toFixed(1)} s) | ${Math.round(size / (ms / 1000)).toLocaleString('en-US')} | ${Math.round(heap / 1e6)} MB |`);
}
