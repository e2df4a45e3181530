import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitFellegiSunter, PatternCounter, patternLogBf, TermFrequencies, type FieldPrior } from '../../src/reconcile/engine/fellegi-sunter.js';
import type { FieldSpec } from '../../src/reconcile/engine/features.js';
import { seededRandom } from './synthetic.js';

// Three binary fields (0 = agree, 1 = disagree) with known m and u; EM must recover them unlabelled.
const FIELDS: FieldSpec[] = [{ name: 'firstName', levels: 2 }, { name: 'lastName', levels: 2 }, { name: 'dateOfBirth', levels: 2 }];
const TRUE_M = [0.9, 0.85, 0.95];
const TRUE_U = [0.1, 0.05, 0.01];
const FLAT_PRIORS: FieldPrior[] = FIELDS.map(() => ({ m: [0.7, 0.3], u: [0.3, 0.7] }));

function simulate(pairs: number, matchShare: number): PatternCounter {
  const random = seededRandom(42);
  const counter = new PatternCounter();
  for (let i = 0; i < pairs; i += 1) {
    const isMatch = random() < matchShare;
    const rates = isMatch ? TRUE_M : TRUE_U;
    counter.add(rates.map((rate) => (random() < rate ? 0 : 1)));
  }
  return counter;
}

describe('Fellegi-Sunter EM', () => {
  it('recovers m, u and the match share from unlabelled pairs', () => {
    const model = fitFellegiSunter(FIELDS, FLAT_PRIORS, simulate(20_000, 0.2).patterns(), { priorStrength: 1, initialLambda: 0.1 });
    assert.ok(Math.abs(model.lambda - 0.2) < 0.02, `lambda ${model.lambda}`);
    model.m.forEach((m, f) => assert.ok(Math.abs((m[0] as number) - (TRUE_M[f] as number)) < 0.03, `m ${f}: ${m[0]}`));
    model.u.forEach((u, f) => assert.ok(Math.abs((u[0] as number) - (TRUE_U[f] as number)) < 0.03, `u ${f}: ${u[0]}`));
    assert.equal(model.usedDefaults, false);
  });
  it('weighs full agreement above partial agreement above full disagreement', () => {
    const model = fitFellegiSunter(FIELDS, FLAT_PRIORS, simulate(5000, 0.2).patterns(), { priorStrength: 1 });
    const all = patternLogBf(model, [0, 0, 0]);
    const some = patternLogBf(model, [0, 1, 0]);
    const none = patternLogBf(model, [1, 1, 1]);
    assert.ok(all > some && some > none);
    assert.equal(patternLogBf(model, [0, -1, -1]), model.logBf[0]?.[0]); // missing fields add nothing
  });
  it('falls back to the priors when the data cannot support a fit', () => {
    const counter = new PatternCounter();
    counter.add([1, 1, 1]);
    const model = fitFellegiSunter(FIELDS, FLAT_PRIORS, counter.patterns());
    assert.ok((model.logBf[0]?.[0] ?? 0) > 0, 'agreement still counts for a match');
  });
});

describe('term-frequency adjustment', () => {
  it('weakens agreement on a common surname and strengthens a rare one', () => {
    const values = [...Array(60).fill('smith'), ...Array.from({ length: 140 }, (_, i) => `rare${i}`)];
    const frequencies = new TermFrequencies(values);
    assert.ok(frequencies.logAdjustment('smith') < 0);
    assert.ok(frequencies.logAdjustment('rare7') > 0);
  });
  it('leaves small practices alone', () => {
    assert.equal(new TermFrequencies(['a', 'a', 'b']).logAdjustment('a'), 0);
  });
});
