// The pure scheduling rules: half-open intervals, the status machine, time checks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canTransition,
  isReschedulable,
  normaliseRoom,
  overlaps,
  parseInstant,
  resolveEnd,
  timeProblem,
  APPOINTMENT_STATUSES,
} from '../../src/appointments/rules.js';

const at = (hhmm: string) => new Date(`2027-05-03T${hhmm}:00Z`);
const iv = (start: string, end: string) => ({ start: at(start), end: at(end) });

describe('overlaps (half-open [start, end))', () => {
  test('back-to-back is not an overlap, in either order', () => {
    assert.equal(overlaps(iv('09:00', '10:00'), iv('10:00', '11:00')), false);
    assert.equal(overlaps(iv('10:00', '11:00'), iv('09:00', '10:00')), false);
  });
  test('partial, contained, identical and enclosing intervals overlap', () => {
    assert.equal(overlaps(iv('09:00', '10:00'), iv('09:59', '10:30')), true);
    assert.equal(overlaps(iv('09:00', '12:00'), iv('10:00', '11:00')), true);
    assert.equal(overlaps(iv('09:00', '10:00'), iv('09:00', '10:00')), true);
    assert.equal(overlaps(iv('10:00', '11:00'), iv('09:00', '12:00')), true);
  });
  test('disjoint intervals do not', () => {
    assert.equal(overlaps(iv('09:00', '10:00'), iv('10:01', '11:00')), false);
  });
});

describe('status transitions', () => {
  const allowed = new Set([
    'SCHEDULED>CONFIRMED',
    'SCHEDULED>CANCELLED',
    'SCHEDULED>NO_SHOW',
    'CONFIRMED>COMPLETED',
    'CONFIRMED>CANCELLED',
    'CONFIRMED>NO_SHOW',
  ]);
  test('exactly the documented transitions are allowed; everything else is refused', () => {
    for (const from of APPOINTMENT_STATUSES) {
      for (const to of APPOINTMENT_STATUSES) {
        assert.equal(canTransition(from, to), allowed.has(`${from}>${to}`), `${from} -> ${to}`);
      }
    }
  });
  test('only SCHEDULED and CONFIRMED appointments can be rescheduled', () => {
    assert.deepEqual(APPOINTMENT_STATUSES.filter(isReschedulable), ['SCHEDULED', 'CONFIRMED']);
  });
});

describe('times', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  test('an instant needs an explicit offset', () => {
    assert.equal(parseInstant('2027-03-14T10:00:00')?.toISOString(), undefined);
    assert.equal(parseInstant('2027-03-14T10:00:00-04:00')?.toISOString(), '2027-03-14T14:00:00.000Z');
    assert.equal(parseInstant('2027-03-14T10:00:00Z')?.toISOString(), '2027-03-14T10:00:00.000Z');
    assert.equal(parseInstant('next tuesday'), null);
  });
  test('end defaults to start plus the service duration', () => {
    assert.equal(resolveEnd(at('09:00'), null, 45).toISOString(), at('09:45').toISOString());
    assert.equal(resolveEnd(at('09:00'), at('09:10'), 45).toISOString(), at('09:10').toISOString());
  });
  test('time problems: end not after start, longer than a day, absurd years', () => {
    assert.equal(timeProblem(iv('10:00', '10:00'), now)?.code, 'INVALID_TIME_RANGE');
    assert.equal(timeProblem(iv('10:00', '09:00'), now)?.code, 'INVALID_TIME_RANGE');
    assert.equal(timeProblem({ start: at('10:00'), end: new Date(at('10:00').getTime() + 86_400_001) }, now)?.code, 'INVALID_TIME_RANGE');
    assert.equal(timeProblem({ start: new Date('1999-12-31T10:00:00Z'), end: new Date('1999-12-31T11:00:00Z') }, now)?.code, 'APPOINTMENT_OUT_OF_RANGE');
    assert.equal(timeProblem({ start: new Date('2037-01-01T10:00:00Z'), end: new Date('2037-01-01T11:00:00Z') }, now)?.code, 'APPOINTMENT_OUT_OF_RANGE');
    assert.equal(timeProblem(iv('10:00', '11:00'), now), null);
  });
  test('room names are trimmed, blank means none', () => {
    assert.equal(normaliseRoom('  Laser   1 '), 'Laser 1');
    assert.equal(normaliseRoom('   '), null);
    assert.equal(normaliseRoom(undefined), null);
  });
});
