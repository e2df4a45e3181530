// Learning from decisions (docs/reconciliation.md, "Learning from decisions"): does labelling the
// doubtful pairs of one month's export cut the reviews of the next month's?
//
// Month 1 and month 2 are two synthetic med-spa exports (test/reconcile/synthetic.ts, seeds 1 and 2:
// households, twins, namesakes, nicknames, typos). Month 1 is matched, and every row of its review
// band is decided from the truth, as a reviewer would: accept (the suggestion is right), choose (a
// runner-up is), or reject / new (none is). The decisions become labelled pairs, the same way the
// server makes them on apply (engine/learning.ts). Month 2 is then matched without and with them, at
// the same threshold, and the reviews needed and the precision and recall of the accepted band are
// printed both ways.
//
//   npm run bench:reconcile-learning            (ML_MODEL and HYBRID, threshold 0.8, review floor 0.5)
import { reconcilePatients, type PracticePatient, type ReconcileResult } from '../src/reconcile/engine/engine.js';
import { countLabels, PairLevels, type LabelledPair, type LearnedEvidence } from '../src/reconcile/engine/learning.js';
import type { Algorithm } from '../src/reconcile/engine/people.js';
import { generateLookAlikeSplit } from '../test/reconcile/lookalikes.js';
import { generateSyntheticSplit, type SyntheticSplit } from '../test/reconcile/synthetic.js';

const THRESHOLD = 0.8;
const FLOOR = 0.5;

function run(split: SyntheticSplit, algorithm: Algorithm, learned?: LearnedEvidence): ReconcileResult {
  return reconcilePatients(split.practice, split.incoming, { algorithm, confidence: FLOOR, acceptAt: THRESHOLD, ...(learned ? { learned } : {}) });
}

/** A reviewer who knows the truth decides every review-band row; each decision is one or two labelled pairs. */
function labelReviewBand(split: SyntheticSplit, result: ReconcileResult): LabelledPair[] {
  const byId = new Map<string, PracticePatient>(split.practice.map((patient) => [patient.id, patient]));
  const levels = new PairLevels(undefined);
  const pairs: LabelledPair[] = [];
  const label = (recordIndex: number, entityId: string, match: boolean) => {
    const vector = levels.of(split.incoming[recordIndex], byId.get(entityId)!);
    if (vector !== null) pairs.push({ levels: vector, match });
  };
  for (const match of result.matches) {
    if (match.confidence >= THRESHOLD) continue;
    const truth = split.truth[match.recordIndex] ?? null;
    if (truth === match.entityId) { label(match.recordIndex, match.entityId, true); continue; }
    label(match.recordIndex, match.entityId, false); // reject or new: the suggestion is not the person
    if (truth !== null && match.candidates.some((c) => c.entityId === truth)) label(match.recordIndex, truth, true); // choose
  }
  return pairs;
}

interface Figures {
  reviews: number; accepted: number; precision: number; recall: number;
  /** True matches a reviewer can still find: accepted or in the review band. */
  reachable: number;
}

function figures(split: SyntheticSplit, result: ReconcileResult): Figures {
  const accepted = result.matches.filter((m) => m.confidence >= THRESHOLD);
  const right = accepted.filter((m) => split.truth[m.recordIndex] === m.entityId).length;
  const matchable = split.truth.filter((t) => t !== null).length;
  const reachable = result.matches.filter((m) => split.truth[m.recordIndex] === m.entityId || (m.confidence < THRESHOLD && m.candidates.some((c) => c.entityId === split.truth[m.recordIndex]))).length;
  return {
    reachable: matchable === 0 ? 0 : reachable / matchable,
    reviews: result.matches.length - accepted.length,
    accepted: accepted.length,
    precision: accepted.length === 0 ? 0 : right / accepted.length,
    recall: matchable === 0 ? 0 : right / matchable,
  };
}

const format = (f: Figures) =>
  `reviews ${String(f.reviews).padStart(4)}  accepted ${String(f.accepted).padStart(5)}  precision ${f.precision.toFixed(4)}  recall ${f.recall.toFixed(4)}  recall with review ${f.reachable.toFixed(4)}`;

const DATA = process.env.LEARNING_DATA ?? 'lookalikes';
const month = (seed: number) => (DATA === 'synthetic' ? generateSyntheticSplit(seed) : generateLookAlikeSplit(seed));
const month1 = month(1);
const month2 = month(2);
console.log(`month 1: ${month1.incoming.length} rows x ${month1.practice.length} patients; month 2: ${month2.incoming.length} x ${month2.practice.length}`);
console.log(`threshold ${THRESHOLD}, review floor ${FLOOR}`);
for (const algorithm of ['ML_MODEL', 'HYBRID'] as const) {
  const first = run(month1, algorithm);
  const labels = labelReviewBand(month1, first);
  const counts = countLabels(labels);
  const learned: LearnedEvidence = { version: 1, counts };
  const started = performance.now();
  const without = figures(month2, run(month2, algorithm));
  const withModel = figures(month2, run(month2, algorithm, learned));
  const elapsed = performance.now() - started;
  console.log(`\n${algorithm}: month 1 review band ${figures(month1, first).reviews} rows -> ${labels.length} labelled pairs (${counts.matchCount} matches, ${counts.nonMatchCount} non-matches)`);
  console.log(`  month 2 without labels: ${format(without)}`);
  console.log(`  month 2 with labels:    ${format(withModel)}`);
  console.log(`  reviews ${without.reviews} -> ${withModel.reviews} (${(((withModel.reviews - without.reviews) / Math.max(1, without.reviews)) * 100).toFixed(1)} %), both runs ${(elapsed / 1000).toFixed(1)} s`);
}
