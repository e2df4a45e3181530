// Confidence is a probability on its own, for ML_MODEL as for HYBRID: look-alikes (a daughter at her
// mother's address and phone, a twin at the same address and birth date, no email or phone to tell
// them apart) must not be reported as near-certain matches; HYBRID's look-alike rules send pairs to
// review instead of dropping them, so on data without look-alikes it keeps ML_MODEL's recall.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { reviewCap } from '../../src/reconcile/engine/decide.js';
import { lookAlikeCap, reconcilePatients, type Algorithm, type ReconcileResult } from '../../src/reconcile/engine/engine.js';
import { generateLookAlikeSplit } from './lookalikes.js';
import type { SyntheticSplit } from './synthetic.js';

const LOOK_ALIKES = new Set(['mother-daughter', 'twin']);

function run(split: SyntheticSplit, algorithm: Algorithm): ReconcileResult {
  // As a v2 job runs the engine: everything from the review floor up, the accept threshold beside it.
  return reconcilePatients(split.practice, split.incoming, { algorithm, confidence: 0.5, acceptAt: 0.8 });
}

function recallAtLeast(result: ReconcileResult, split: SyntheticSplit, floor: number): number {
  const positives = split.truth.filter((id) => id !== null).length;
  return result.matches.filter((m) => m.confidence >= floor && split.truth[m.recordIndex] === m.entityId).length / positives;
}

describe('ML_MODEL calibrated on its own (look-alike export: mothers/daughters and twins, no email or phone)', () => {
  const split = generateLookAlikeSplit(31, { practiceSize: 800, incomingSize: 700 });

  it('gives no mother/daughter or twin pair 0.95 or more', () => {
    const result = run(split, 'ML_MODEL');
    const overconfident = result.matches.filter((m) => LOOK_ALIKES.has(split.kinds[m.recordIndex] as string) && m.confidence >= 0.95);
    assert.deepEqual(overconfident.map((m) => [split.kinds[m.recordIndex], m.confidence]), []);
    // They are still found, as doubtful: a person should see them.
    assert.ok(result.matches.some((m) => split.kinds[m.recordIndex] === 'twin'));
  });

  it('is right at least 95% of the time when it says 0.95 or more', () => {
    const high = run(split, 'ML_MODEL').matches.filter((m) => m.confidence >= 0.95);
    const right = high.filter((m) => split.truth[m.recordIndex] === m.entityId).length;
    assert.ok(high.length > 300, `only ${high.length} confident matches`);
    assert.ok(right / high.length >= 0.95, `${right}/${high.length}`);
  });

  it('HYBRID auto-accepts no look-alike: they wait in the review band', () => {
    const result = run(split, 'HYBRID');
    const lookAlikes = result.matches.filter((m) => LOOK_ALIKES.has(split.kinds[m.recordIndex] as string));
    assert.deepEqual(lookAlikes.filter((m) => m.confidence >= 0.8).map((m) => m.confidence), []);
    assert.ok(lookAlikes.length > 0);
  });
});

describe('HYBRID look-alike rules move pairs to review, never drop them (typo-only export)', () => {
  const split = generateLookAlikeSplit(1, { lookAlikes: false });

  it('finds at review-or-better every true match ML_MODEL finds there', () => {
    const hybrid = run(split, 'HYBRID');
    const model = run(split, 'ML_MODEL');
    // Its lifts (same member id or mailbox) may find more; its look-alike rules must not lose any.
    assert.ok(recallAtLeast(hybrid, split, 0.5) >= recallAtLeast(model, split, 0.5),
      `HYBRID ${recallAtLeast(hybrid, split, 0.5)} < ML_MODEL ${recallAtLeast(model, split, 0.5)}`);
    assert.ok(recallAtLeast(model, split, 0.5) > 0.98);
  });

  it('caps a pair inside the review band: below the accept threshold, above the floor', () => {
    const hybrid = new Map(run(split, 'HYBRID').matches.map((m) => [m.recordIndex, m]));
    const lowered = run(split, 'ML_MODEL').matches
      .map((m) => ({ model: m, hybrid: hybrid.get(m.recordIndex) }))
      .filter(({ model, hybrid: h }) => h !== undefined && h.entityId === model.entityId && h.confidence < model.confidence - 0.05);
    assert.ok(lowered.length > 0, 'no rule fired: the test data lost its garbled first names');
    for (const { hybrid: h } of lowered) assert.ok(h!.confidence >= 0.5 && h!.confidence < 0.8, `${h!.confidence}`);
  });
});

describe('review cap', () => {
  it('sits halfway into the band, or just below the threshold when there is no band', () => {
    assert.equal(reviewCap(0.8, 0.5), 0.65);
    assert.ok(reviewCap(0.5, 0.5) < 0.5);
    assert.equal(lookAlikeCap({ algorithm: 'HYBRID', confidence: 0.8 }), 0.65);
    assert.equal(lookAlikeCap({ algorithm: 'HYBRID', confidence: 0.4, acceptAt: 0.9 }), 0.65);
  });
});
