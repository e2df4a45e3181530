// Learning from reviewers' decisions, engine side (src/reconcile/engine/learning.ts): labelled
// pairs move the fit towards the evidence, no labels change nothing, and the doubtful band's labels
// settle next month's look-alikes without costing precision.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconcilePatients, type PracticePatient, type ReconcileResult } from '../../src/reconcile/engine/engine.js';
import { defaultModel, withLabelledCounts } from '../../src/reconcile/engine/fellegi-sunter.js';
import { F, PERSON_FIELDS } from '../../src/reconcile/engine/features.js';
import { bandModel, countLabels, labelMetrics, LABEL_STRENGTH, PairLevels, type LabelledPair } from '../../src/reconcile/engine/learning.js';
import { PERSON_PRIORS } from '../../src/reconcile/engine/scorers.js';
import { decidedPairs } from '../../src/reconcile/review/learning.js';
import type { RecordRow } from '../../src/reconcile/review/store.js';
import { generateLookAlikeSplit } from './lookalikes.js';
import type { SyntheticSplit } from './synthetic.js';

const THRESHOLD = 0.8;
const FLOOR = 0.5;
const run = (split: SyntheticSplit, algorithm: 'ML_MODEL' | 'HYBRID', learned?: Parameters<typeof reconcilePatients>[2]['learned']) =>
  reconcilePatients(split.practice, split.incoming, { algorithm, confidence: FLOOR, acceptAt: THRESHOLD, ...(learned ? { learned } : {}) });

/** What a reviewer who knows the truth decides on every doubtful row, as labelled pairs. */
function reviewBandLabels(split: SyntheticSplit, result: ReconcileResult): LabelledPair[] {
  const byId = new Map<string, PracticePatient>(split.practice.map((p) => [p.id, p]));
  const levels = new PairLevels(undefined);
  return result.matches.filter((m) => m.confidence < THRESHOLD).flatMap((m) => {
    const vector = levels.of(split.incoming[m.recordIndex], byId.get(m.entityId)!);
    return vector === null ? [] : [{ levels: vector, match: split.truth[m.recordIndex] === m.entityId }];
  });
}

function accepted(split: SyntheticSplit, result: ReconcileResult) {
  const list = result.matches.filter((m) => m.confidence >= THRESHOLD);
  const right = list.filter((m) => split.truth[m.recordIndex] === m.entityId).length;
  return { count: list.length, precision: list.length === 0 ? 1 : right / list.length, reviews: result.matches.length - list.length };
}

describe('learning from labelled pairs', () => {
  it('labelled matches move m towards their levels, and labelled non-matches move u', () => {
    const base = defaultModel(PERSON_FIELDS, PERSON_PRIORS, 0.01);
    // Fifty reviewer-confirmed matches whose first names differ outright (nicknames the table lacks).
    const levels = PERSON_FIELDS.map(() => 0);
    levels[F.given] = 4;
    const counts = countLabels(Array.from({ length: 50 }, () => ({ levels, match: true })));
    const moved = withLabelledCounts(PERSON_FIELDS, PERSON_PRIORS, base, counts, LABEL_STRENGTH);
    const before = base.m[F.given]![4]!;
    const after = moved.m[F.given]![4]!;
    assert.ok(Math.abs(after - (before * 100 + 50) / 150) < 1e-9, `m ${before} -> ${after}`);
    assert.ok(moved.logBf[F.given]![4]! > base.logBf[F.given]![4]!, 'a different first name is weaker evidence against');
    assert.deepEqual(moved.u, base.u, 'no non-matches: u stays');

    const shared = PERSON_FIELDS.map(() => -1);
    shared[F.email] = 0; // a household's shared mailbox, rejected by reviewers
    const rejects = countLabels(Array.from({ length: 30 }, () => ({ levels: shared, match: false })));
    const withRejects = withLabelledCounts(PERSON_FIELDS, PERSON_PRIORS, base, rejects, LABEL_STRENGTH);
    assert.ok(withRejects.u[F.email]![0]! > base.u[F.email]![0]! * 100, `u(email equal) ${base.u[F.email]![0]} -> ${withRejects.u[F.email]![0]}`);
    assert.ok(withRejects.logBf[F.email]![0]! < base.logBf[F.email]![0]!, 'a shared mailbox counts for less');
  });

  it('no labels (an empty training set) leaves every result identical', () => {
    const split = generateLookAlikeSplit(11, { practiceSize: 300, incomingSize: 240 });
    for (const algorithm of ['ML_MODEL', 'HYBRID'] as const) {
      assert.deepEqual(run(split, algorithm, { version: 0, counts: countLabels([]) }), run(split, algorithm));
    }
  });

  it('a handful of labels (under MIN_BAND_LABELS) does not re-score the doubtful band', () => {
    const counts = countLabels(Array.from({ length: 5 }, () => ({ levels: PERSON_FIELDS.map(() => 0), match: false })));
    assert.equal(bandModel(counts, PERSON_PRIORS.map((p) => [...p.m])), null);
  });

  it('after labelling month 1\'s doubtful pairs, month 2 needs fewer reviews at no lower precision', () => {
    const month1 = generateLookAlikeSplit(1, { practiceSize: 600, incomingSize: 480 });
    const month2 = generateLookAlikeSplit(2, { practiceSize: 600, incomingSize: 480 });
    for (const algorithm of ['ML_MODEL', 'HYBRID'] as const) {
      const labels = reviewBandLabels(month1, run(month1, algorithm));
      assert.ok(labels.length >= 20, `${algorithm}: ${labels.length} labels`);
      const learned = { version: 1, counts: countLabels(labels) };
      const without = accepted(month2, run(month2, algorithm));
      const withLabels = accepted(month2, run(month2, algorithm, learned));
      assert.ok(withLabels.reviews < without.reviews / 2, `${algorithm}: reviews ${without.reviews} -> ${withLabels.reviews}`);
      assert.ok(withLabels.precision >= without.precision, `${algorithm}: precision ${without.precision} -> ${withLabels.precision}`);
    }
  });

  it('leave-one-out metrics score each label without itself', () => {
    const match = PERSON_FIELDS.map(() => 0);
    const stranger = PERSON_FIELDS.map((field) => field.levels - 1);
    const pairs: LabelledPair[] = [
      ...Array.from({ length: 10 }, () => ({ levels: match, match: true })),
      ...Array.from({ length: 10 }, () => ({ levels: stranger, match: false })),
    ];
    assert.deepEqual(labelMetrics(pairs, 0.8), { evaluated: 20, threshold: 0.8, precision: 1, recall: 1 });
    assert.deepEqual(labelMetrics([], 0.8), { evaluated: 0, threshold: 0.8, precision: null, recall: null });
  });

  it('decisions as labels: choose names a match and a non-match, reject and new a non-match, no decision nothing', () => {
    const row = (decision: RecordRow['decision'], decided: string | null, band: RecordRow['band'] = 'review'): RecordRow => ({
      record_index: 7, band, confidence: 0.7, entity_id: 'suggested', detail_sealed: '', decision, decided_entity_id: decided,
      decided_by_type: null, decided_by_id: null, decided_at: null, applied_at: null, applied_entity_id: null, apply_error: null,
    });
    assert.deepEqual(decidedPairs(row('accept', 'suggested')), [{ recordIndex: 7, entityId: 'suggested', match: true, decision: 'accept' }]);
    assert.deepEqual(decidedPairs(row('choose', 'runner-up')), [
      { recordIndex: 7, entityId: 'runner-up', match: true, decision: 'choose' },
      { recordIndex: 7, entityId: 'suggested', match: false, decision: 'choose' },
    ]);
    assert.deepEqual(decidedPairs(row('reject', null)), [{ recordIndex: 7, entityId: 'suggested', match: false, decision: 'reject' }]);
    assert.deepEqual(decidedPairs(row('new', null)), [{ recordIndex: 7, entityId: 'suggested', match: false, decision: 'new' }]);
    assert.deepEqual(decidedPairs(row(null, null, 'accepted')), [], 'an accepted band nobody looked at teaches nothing');
  });
});
