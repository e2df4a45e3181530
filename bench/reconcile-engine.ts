// Engine-level accuracy and speed of the reconciliation engine (no HTTP, no database).
//   npx tsx bench/reconcile-engine.ts            everything
//   npx tsx bench/reconcile-engine.ts --quick    FEBRL + one synthetic split, no 5k x 5k timing
// Prints, per split and algorithm: precision, recall and F1 at the default threshold 0.8, a
// calibration table (confidence bucket -> observed precision) and the time taken; then, on the
// look-alike generator (test/reconcile/lookalikes.ts), a reliability table per algorithm (mean
// predicted confidence vs observed share right, in ten bins), precision at >= 0.95, and recall at
// review-or-better (>= 0.5, the v2 review floor) beside recall at accept (>= 0.8).
import { FEBRL_SPLITS, loadFebrlSplit } from './febrl.js';
import {
  reconcileAppointments, reconcilePatients, type Algorithm, type ReconcileResult,
} from '../src/reconcile/engine/engine.js';
import { generateLookAlikeSplit } from '../test/reconcile/lookalikes.js';
import { generateSyntheticAppointments, generateSyntheticSplit, type SyntheticSplit } from '../test/reconcile/synthetic.js';

const ALGORITHMS: readonly Algorithm[] = ['FUZZY_MATCH', 'ML_MODEL', 'HYBRID'];
const THRESHOLD = 0.8;
const BUCKETS = [0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0001];

interface Scores { precision: number; recall: number; f1: number; tp: number; fp: number; fn: number }

export function scoreAt(result: ReconcileResult, truth: readonly (string | null)[], threshold: number): Scores {
  let tp = 0;
  let fp = 0;
  for (const match of result.matches) {
    if (match.confidence < threshold) continue;
    if (truth[match.recordIndex] === match.entityId) tp += 1;
    else fp += 1;
  }
  const positives = truth.filter((id) => id !== null).length;
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = positives === 0 ? 1 : tp / positives;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, tp, fp, fn: positives - tp };
}

/** Rows: "[lo, hi)  n  precision | >= lo: n  precision"; calibrated when precision >= lo in every row. */
export function calibrationTable(result: ReconcileResult, truth: readonly (string | null)[]): string[] {
  const lines: string[] = [];
  for (let b = 0; b < BUCKETS.length - 1; b += 1) {
    const lo = BUCKETS[b] as number;
    const hi = BUCKETS[b + 1] as number;
    const inBucket = result.matches.filter((m) => m.confidence >= lo && m.confidence < hi);
    const atLeast = result.matches.filter((m) => m.confidence >= lo);
    const right = (list: typeof inBucket): number => list.filter((m) => truth[m.recordIndex] === m.entityId).length;
    const precision = (list: typeof inBucket): string => (list.length === 0 ? '   -  ' : (right(list) / list.length).toFixed(4));
    const ok = atLeast.length === 0 || right(atLeast) / atLeast.length >= lo ? 'ok' : 'UNDER';
    lines.push(`      [${lo.toFixed(2)}, ${Math.min(hi, 1).toFixed(2)})  n=${String(inBucket.length).padStart(5)}  precision ${precision(inBucket)}   |  >=${lo.toFixed(2)}: n=${String(atLeast.length).padStart(5)} precision ${precision(atLeast)} ${ok}`);
  }
  return lines;
}

/** Reliability: per tenth of confidence, how many matches, their mean confidence and the share right. */
export function reliabilityTable(result: ReconcileResult, truth: readonly (string | null)[]): string[] {
  const lines: string[] = [];
  for (let bin = 0; bin < 10; bin += 1) {
    const lo = bin / 10;
    const hi = (bin + 1) / 10;
    const inBin = result.matches.filter((m) => m.confidence >= lo && (m.confidence < hi || (bin === 9 && m.confidence <= 1)));
    if (inBin.length === 0) continue;
    const predicted = inBin.reduce((sum, m) => sum + m.confidence, 0) / inBin.length;
    const observed = inBin.filter((m) => truth[m.recordIndex] === m.entityId).length / inBin.length;
    const flag = observed + 0.1 < predicted ? '  OVER-CONFIDENT' : '';
    lines.push(`      [${lo.toFixed(1)}, ${hi.toFixed(1)})  n=${String(inBin.length).padStart(5)}  predicted ${predicted.toFixed(3)}  observed ${observed.toFixed(3)}${flag}`);
  }
  return lines;
}

/** The look-alike and typo-only splits: calibration of each algorithm on its own, and where its rules put pairs. */
function runCalibration(split: SyntheticSplit): void {
  const lookAlikes = split.kinds.filter((kind) => kind === 'mother-daughter' || kind === 'twin').length;
  console.log(`\n${split.name}: ${split.practice.length} practice x ${split.incoming.length} incoming, ${split.truth.filter((t) => t !== null).length} true matches, ${lookAlikes} look-alikes (engine run as a v2 job: floor 0.5, accept 0.8)`);
  for (const algorithm of ALGORITHMS) {
    const result = reconcilePatients(split.practice, split.incoming, { algorithm, confidence: 0.5, acceptAt: THRESHOLD });
    const high = result.matches.filter((m) => m.confidence >= 0.95);
    const highRight = high.filter((m) => split.truth[m.recordIndex] === m.entityId).length;
    const overconfidentLookAlikes = result.matches.filter((m) => m.confidence >= 0.95 && split.truth[m.recordIndex] === null
      && (split.kinds[m.recordIndex] === 'mother-daughter' || split.kinds[m.recordIndex] === 'twin')).length;
    const accepted = scoreAt(result, split.truth, THRESHOLD);
    const review = scoreAt(result, split.truth, 0.5);
    console.log(`  ${algorithm.padEnd(12)} >=0.95: n=${high.length} precision ${(high.length === 0 ? 1 : highRight / high.length).toFixed(4)} (look-alikes ${overconfidentLookAlikes})  |  accepted P ${accepted.precision.toFixed(4)} R ${accepted.recall.toFixed(4)}  |  review-or-better R ${review.recall.toFixed(4)}`);
    for (const line of reliabilityTable(result, split.truth)) console.log(line);
  }
}

function timeIt<T>(run: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = run();
  return { value, ms: performance.now() - start };
}

function report(name: string, algorithm: Algorithm, result: ReconcileResult, truth: readonly (string | null)[], ms: number, details: boolean): void {
  const s = scoreAt(result, truth, THRESHOLD);
  console.log(`  ${name.padEnd(22)} ${algorithm.padEnd(12)} P ${s.precision.toFixed(4)}  R ${s.recall.toFixed(4)}  F1 ${s.f1.toFixed(4)}  (tp ${s.tp}, fp ${s.fp}, fn ${s.fn})  ${ms.toFixed(0).padStart(5)} ms  pairs ${result.stats.compared}`);
  if (details) for (const line of calibrationTable(result, truth)) console.log(line);
}

function runPatients(name: string, split: { practice: Parameters<typeof reconcilePatients>[0]; incoming: unknown[]; truth: (string | null)[] }, details: boolean): void {
  console.log(`\n${name}: ${split.practice.length} practice x ${split.incoming.length} incoming, ${split.truth.filter((t) => t !== null).length} true matches`);
  for (const algorithm of ALGORITHMS) {
    // Threshold 0.1 so the calibration table sees low-confidence matches too; F1 is taken at 0.8.
    const { value, ms } = timeIt(() => reconcilePatients(split.practice, split.incoming, { algorithm, confidence: 0.1 }));
    report(name, algorithm, value, split.truth, ms, details);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function main(): void {
  const quick = process.argv.includes('--quick');
  const details = !process.argv.includes('--no-calibration');
  console.log(`Reconciliation engine benchmark (node ${process.version}); F1 at confidence >= ${THRESHOLD}`);
  // Warm the JIT and the per-thread caches so the first split's timing is not a cold start.
  const warm = loadFebrlSplit('dataset1');
  reconcilePatients(warm.practice, warm.incoming, { algorithm: 'HYBRID', confidence: 0.8 });

  for (const name of FEBRL_SPLITS) runPatients(`febrl ${name}`, loadFebrlSplit(name), details);
  for (const seed of quick ? [101] : [101, 202, 303]) {
    runPatients(`synthetic med-spa ${seed}`, generateSyntheticSplit(seed), details);
  }

  for (const seed of quick ? [1] : [1, 2]) {
    runCalibration(generateLookAlikeSplit(seed));
    runCalibration(generateLookAlikeSplit(seed, { lookAlikes: false }));
  }

  const appointments = generateSyntheticAppointments(404, 2000, 1500);
  console.log(`\nsynthetic appointments: ${appointments.practice.length} appointments x ${appointments.incoming.length} redemption rows`);
  for (const algorithm of ALGORITHMS) {
    const { value, ms } = timeIt(() => reconcileAppointments(appointments.practice, appointments.incoming, { algorithm, confidence: 0.1 }));
    report('appointments', algorithm, value, appointments.truth, ms, false);
  }

  if (quick) return;
  const big = generateSyntheticSplit(505, { practiceSize: 5000, incomingSize: 5000 });
  console.log(`\nspeed: ${big.practice.length} practice x ${big.incoming.length} incoming (synthetic), median of 5 runs`);
  for (const algorithm of ALGORITHMS) {
    const times: number[] = [];
    let last: ReconcileResult | null = null;
    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    for (let run = 0; run < 5; run += 1) {
      const { value, ms } = timeIt(() => reconcilePatients(big.practice, big.incoming, { algorithm, confidence: THRESHOLD }));
      heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      times.push(ms);
      last = value;
    }
    const s = scoreAt(last as ReconcileResult, big.truth, THRESHOLD);
    console.log(`  ${algorithm.padEnd(12)} median ${median(times).toFixed(0)} ms (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)})  F1 ${s.f1.toFixed(4)}  pairs ${(last as ReconcileResult).stats.compared}  heap +${((heapPeak - heapBefore) / 1e6).toFixed(0)} MB`);
  }
}

main();
