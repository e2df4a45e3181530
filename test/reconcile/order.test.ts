// A rerun must reproduce a result exactly, whatever order the rows happen to load in (a practice
// read from the database without ORDER BY, an export sorted differently): same matches, same
// confidences to the last digit, same runner-ups.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { reconcileAppointments, reconcilePatients, type Algorithm, type ReconcileResult } from '../../src/reconcile/engine/engine.js';
import { generateSyntheticAppointments, generateSyntheticSplit, seededRandom } from './synthetic.js';

function shuffled<T>(values: readonly T[], seed: number): { list: T[]; from: number[] } {
  const random = seededRandom(seed);
  const from = values.map((_, i) => i);
  for (let i = from.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [from[i], from[j]] = [from[j] as number, from[i] as number];
  }
  return { list: from.map((i) => values[i] as T), from };
}

/** The result keyed by original row position, so two runs over permuted input can be compared. */
function byOriginalRow(result: ReconcileResult, from: readonly number[]): unknown[] {
  return result.matches
    .map((match) => ({ ...match, recordIndex: from[match.recordIndex] as number }))
    .sort((a, b) => a.recordIndex - b.recordIndex);
}

describe('order independence', () => {
  const split = generateSyntheticSplit(77, { practiceSize: 700, incomingSize: 500 });
  const identity = split.incoming.map((_, i) => i);
  for (const algorithm of ['ML_MODEL', 'HYBRID', 'FUZZY_MATCH'] as Algorithm[]) {
    for (const oneToOne of [false, true]) {
      it(`${algorithm}${oneToOne ? ' oneToOne' : ''}: shuffling the practice and the export gives the identical result`, () => {
        const options = { algorithm, confidence: 0.1, oneToOne };
        const base = reconcilePatients(split.practice, split.incoming, options);
        for (const seed of [1, 2]) {
          const practice = shuffled(split.practice, seed).list;
          const incoming = shuffled(split.incoming, seed + 100);
          const again = reconcilePatients(practice, incoming.list, options);
          assert.deepEqual(byOriginalRow(again, incoming.from), byOriginalRow(base, identity));
          assert.equal(again.confidence, base.confidence);
          assert.equal(again.stats.compared, base.stats.compared);
        }
      });
    }
  }

  it('two servers holding the same patients under other ids give the same confidences (ids are generated per server)', () => {
    const options = { algorithm: 'HYBRID' as const, confidence: 0.1, oneToOne: false };
    const base = reconcilePatients(split.practice, split.incoming, options);
    const renumbered = split.practice.map((patient, i) => ({ ...patient, id: `f${String((i * 7919) % 100_003).padStart(7, '0')}-0000-4000-8000-000000000000` }));
    const again = reconcilePatients(renumbered, split.incoming, options);
    const newId = new Map(split.practice.map((patient, i) => [patient.id, renumbered[i]!.id]));
    const confidences = (result: ReconcileResult) => result.matches.map((match) => [match.recordIndex, match.confidence]);
    assert.deepEqual(confidences(again), confidences(base));
    assert.deepEqual(again.matches.map((match) => match.entityId), base.matches.map((match) => newId.get(match.entityId)));
  });

  it('APPOINTMENTS: shuffling the appointments and the redemption rows gives the identical result', () => {
    const appointments = generateSyntheticAppointments(78, 500, 300);
    const options = { algorithm: 'HYBRID' as const, confidence: 0.1, oneToOne: true };
    const base = reconcileAppointments(appointments.practice, appointments.incoming, options);
    const incoming = shuffled(appointments.incoming, 5);
    const again = reconcileAppointments(shuffled(appointments.practice, 4).list, incoming.list, options);
    assert.deepEqual(byOriginalRow(again, incoming.from), byOriginalRow(base, appointments.incoming.map((_, i) => i)));
  });
});
