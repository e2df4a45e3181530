import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  reconcileAppointments, reconcilePatients, type PracticeAppointment, type PracticePatient, type ReconcileResult,
} from '../../src/reconcile/engine/engine.js';
import { generateSyntheticAppointments, generateSyntheticSplit } from './synthetic.js';

// Made-up people. A household (mother and daughter), twins, and two unrelated Maria Garcias.
const HOUSEHOLD = { line1: '12 Larkspur Lane', city: 'Scottsdale', state: 'AZ', postalCode: '85251', country: 'US' };
const PRACTICE: PracticePatient[] = [
  { id: 'p-mother', firstName: 'Rosalind', lastName: 'Quennell', dateOfBirth: '1968-02-11', email: 'rquennell@example.com', phoneNumber: '+14805550101', address: HOUSEHOLD },
  { id: 'p-twin-a', firstName: 'Odessa', lastName: 'Quennell', dateOfBirth: '1999-07-30', email: 'odessa.q@example.com', phoneNumber: '+14805550102', address: HOUSEHOLD },
  { id: 'p-maria-1', firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1980-05-14', email: 'mgarcia80@example.com', phoneNumber: '+16025550111', address: { line1: '4 Oak St', city: 'Tempe', postalCode: '85281' } },
  { id: 'p-maria-2', firstName: 'Maria', lastName: 'Garcia', dateOfBirth: '1992-11-03', email: 'maria.garcia92@example.com', phoneNumber: '+16025550199', address: { line1: '88 Elm Ave', city: 'Mesa', postalCode: '85201' } },
  { id: 'p-liz', firstName: 'Elizabeth', lastName: 'Thornquist', dateOfBirth: '1975-03-04', email: 'liz.thornquist@gmail.com', phoneNumber: '+13125550123', address: null, externalIds: { alle: 'AL-55501' } },
  { id: 'p-bill', firstName: 'William', lastName: 'Ashdown', dateOfBirth: '1961-12-25', email: null, phoneNumber: '+13125550177', address: null },
];

function matchOf(result: ReconcileResult, index: number) {
  return result.matches.find((match) => match.recordIndex === index);
}

describe('reconcilePatients on hard cases', () => {
  const incoming: unknown[] = [
    { 'First Name': 'LIZ', 'Last Name': 'Thornquist', 'Email Address': 'L.I.Z.Thornquist+alle@googlemail.com', DOB: '03/04/1975' },
    { fname: 'Bill', lname: 'Ashdown', Mobile: '(312) 555-0177', birthdate: '25/12/1961' },
    { given_name: 'Maria', surname: 'Garcia', date_of_birth: '05/14/1980', Phone: '602.555.0111' },
    // The daughter: same surname, address and home phone as the mother, another name and birth date.
    { 'First Name': 'Juniper', 'Last Name': 'Quennell', DOB: '2001-09-09', Phone: '480-555-0101', Address: '12 Larkspur Ln', Zip: '85251', email: 'juniper.q@example.com' },
    // Odessa's twin, not a patient: same surname, address and birth date, another first name and email.
    { 'First Name': 'Ophelia', 'Last Name': 'Quennell', DOB: '07/30/1999', Address: '12 Larkspur Lane', Zip: '85251', Email: 'ophelia.q@example.com', Mobile: '480-555-0109' },
    // A Maria Garcia who is neither of the practice's two.
    { 'First Name': 'Maria', 'Last Name': 'Garcia', DOB: '1970-01-20', Email: 'garcia.m.1970@example.com', Zip: '85004' },
    { note: 'nothing usable here' },
    'not an object',
    { 'Member ID': 'al55501', 'First Name': 'Beth', 'Last Name': 'Thornquist' },
  ];
  const result = reconcilePatients(PRACTICE, incoming, { algorithm: 'HYBRID', confidence: 0.8 });

  it('matches nicknames with email dots, plus-tags and a DD/MM date', () => {
    assert.equal(matchOf(result, 0)?.entityId, 'p-liz');
    assert.equal(matchOf(result, 1)?.entityId, 'p-bill');
  });
  it('picks the right one of two Maria Garcias', () => {
    assert.equal(matchOf(result, 2)?.entityId, 'p-maria-1');
  });
  it('does not match a daughter to her mother', () => assert.equal(matchOf(result, 3), undefined));
  it('does not match a twin to her sister', () => assert.equal(matchOf(result, 4), undefined));
  it('does not match a third Maria Garcia to either', () => assert.equal(matchOf(result, 5), undefined));
  it('reports rows with no usable field, and non-objects, as unmatched', () => {
    assert.ok(result.unmatched.includes(6));
    assert.ok(result.unmatched.includes(7));
  });
  it('matches on a member id with a nickname', () => assert.equal(matchOf(result, 8)?.entityId, 'p-liz'));
  it('gives at most one match per record, field scores, and a mean confidence', () => {
    const indexes = result.matches.map((match) => match.recordIndex);
    assert.equal(new Set(indexes).size, indexes.length);
    assert.equal(result.matches.length + result.unmatched.length, incoming.length);
    for (const match of result.matches) {
      assert.equal(match.entityType, 'PATIENT');
      assert.ok(match.confidence >= 0.8 && match.confidence < 1);
      assert.ok(match.candidates.length <= 3);
      assert.ok(Object.keys(match.fieldScores).length > 0);
    }
    const mean = result.matches.reduce((sum, match) => sum + match.confidence, 0) / result.matches.length;
    assert.ok(Math.abs(result.confidence - mean) < 1e-3);
  });
  it('returns plain JSON (it crosses a worker-thread boundary)', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
  });
});

describe('ambiguity', () => {
  it('lowers confidence when two practice records fit equally well', () => {
    const twins: PracticePatient[] = [
      { id: 'a', firstName: 'Noor', lastName: 'Vantongeren', dateOfBirth: '1990-01-01', email: null, phoneNumber: null },
      { id: 'b', firstName: 'Noor', lastName: 'Vantongeren', dateOfBirth: '1990-01-01', email: null, phoneNumber: null },
    ];
    const result = reconcilePatients(twins, [{ firstName: 'Noor', lastName: 'Vantongeren', dob: '1990-01-01' }], { algorithm: 'HYBRID', confidence: 0.1 });
    const match = result.matches[0];
    assert.ok(match !== undefined && match.confidence <= 0.5, `confidence ${match?.confidence}`);
    assert.equal(match?.candidates.length, 1);
  });
});

describe('oneToOne', () => {
  it('hands each practice record to one incoming row only', () => {
    const rows = [
      { firstName: 'William', lastName: 'Ashdown', phone: '3125550177', dob: '1961-12-25' },
      { firstName: 'Bill', lastName: 'Ashdown', phone: '3125550177', dob: '1961-12-25' },
    ];
    const free = reconcilePatients(PRACTICE, rows, { algorithm: 'HYBRID', confidence: 0.5 });
    assert.equal(free.matches.length, 2);
    const strict = reconcilePatients(PRACTICE, rows, { algorithm: 'HYBRID', confidence: 0.5, oneToOne: true });
    assert.equal(strict.matches.length, 1);
  });
});

describe('calibration and accuracy on a synthetic med-spa export', () => {
  const split = generateSyntheticSplit(11, { practiceSize: 600, incomingSize: 500 });
  for (const algorithm of ['HYBRID', 'ML_MODEL', 'FUZZY_MATCH'] as const) {
    it(`${algorithm}: among matches with confidence >= 0.8 at least 80% are right`, () => {
      const result = reconcilePatients(split.practice, split.incoming, { algorithm, confidence: 0.8 });
      const right = result.matches.filter((match) => split.truth[match.recordIndex] === match.entityId).length;
      assert.ok(right / result.matches.length >= 0.8, `${right}/${result.matches.length}`);
    });
  }
  it('HYBRID finds most true matches and keeps look-alikes out', () => {
    const result = reconcilePatients(split.practice, split.incoming, { algorithm: 'HYBRID', confidence: 0.8 });
    const right = result.matches.filter((match) => split.truth[match.recordIndex] === match.entityId).length;
    const positives = split.truth.filter((id) => id !== null).length;
    assert.ok(right / positives > 0.95, `recall ${right}/${positives}`);
    assert.ok(right / result.matches.length > 0.97, `precision ${right}/${result.matches.length}`);
  });
  it('is deterministic', () => {
    const a = reconcilePatients(split.practice, split.incoming.slice(0, 100), { algorithm: 'HYBRID', confidence: 0.8 });
    const b = reconcilePatients(split.practice, split.incoming.slice(0, 100), { algorithm: 'HYBRID', confidence: 0.8 });
    assert.deepEqual(a, b);
  });
});

describe('reconcileAppointments', () => {
  const patient = PRACTICE[4] as PracticePatient;
  const appointments: PracticeAppointment[] = [
    { id: 'ap-botox', patient, startTime: '2024-03-01T16:00:00Z', serviceName: 'Botox - Forehead', serviceCategory: 'Injectables', priceCents: 45000, status: 'COMPLETED' },
    { id: 'ap-filler', patient, startTime: '2024-03-20T16:00:00Z', serviceName: 'Lip Filler (Juvederm Volbella)', serviceCategory: 'Injectables', priceCents: 70000, status: 'COMPLETED' },
    { id: 'ap-cancelled', patient, startTime: '2024-03-03T16:00:00Z', serviceName: 'Botox - Crow\'s feet', priceCents: 30000, status: 'CANCELLED' },
  ];
  it('matches a generic-name redemption posted days later, and a reward amount', () => {
    const rows = [
      { 'Member First Name': 'Liz', 'Member Last Name': 'Thornquist', Email: 'liz.thornquist@gmail.com', 'Redemption Date': '03/06/2024', Product: 'onabotulinumtoxinA', 'Reward Amount': '$45.00' },
      { 'Member First Name': 'Elizabeth', 'Member Last Name': 'Thornquist', 'Redemption Date': '03/22/2024', Product: 'HA filler', Amount: '$700.00' },
      { 'Member First Name': 'Elizabeth', 'Member Last Name': 'Thornquist', 'Redemption Date': '08/22/2024', Product: 'Botox' },
    ];
    const result = reconcileAppointments(appointments, rows, { algorithm: 'HYBRID', confidence: 0.5 });
    assert.equal(matchOf(result, 0)?.entityId, 'ap-botox');
    assert.equal(matchOf(result, 0)?.entityType, 'APPOINTMENT');
    assert.equal(matchOf(result, 1)?.entityId, 'ap-filler');
    assert.equal(matchOf(result, 2), undefined, 'no completed appointment in the posting window');
  });
  it('is accurate on a synthetic redemption export', () => {
    const split = generateSyntheticAppointments(3, 300, 200);
    const result = reconcileAppointments(split.practice, split.incoming, { algorithm: 'HYBRID', confidence: 0.8 });
    const right = result.matches.filter((match) => split.truth[match.recordIndex] === match.entityId).length;
    assert.ok(right / result.matches.length >= 0.95, `precision ${right}/${result.matches.length}`);
    assert.ok(right / split.truth.filter((t) => t !== null).length >= 0.9);
  });
});

describe('reconcilePatients on other naming traditions and export shapes', () => {
  const practice: PracticePatient[] = [
    { id: 'p-linh', firstName: 'Linh', lastName: 'Nguyễn', dateOfBirth: '1985-03-25', email: null, phoneNumber: '+17145550142', address: null },
    { id: 'p-thao', firstName: 'Thị Thảo', lastName: 'Nguyễn', dateOfBirth: '1985-03-25', email: 'thao.n@example.com', phoneNumber: '+17145550199', address: null },
    { id: 'p-lupe', firstName: 'Guadalupe', lastName: 'Ramírez Ortiz', dateOfBirth: '1969-02-06', email: null, phoneNumber: '+12135550163', address: null },
    { id: 'p-vale', firstName: 'Valentina', lastName: 'Salazar', dateOfBirth: '1974-01-07', email: 'vale.s@example.com', phoneNumber: '+17325550182', address: null },
  ];
  const incoming: unknown[] = [
    // "Last, First Middle" in one column, the given name people use coming second.
    { 'Full Name': 'Nguyen, Thi Linh', DOB: '03/25/85', Phone: '+1 (714) 555-0142 x12' },
    // A Spanish short form, one of two surnames, a loyalty list's keys.
    { 'Member First Name': 'Lupe', 'Member Last Name': 'Ramirez', 'Birth Date': 'Feb 6, 1969', Cell: '2135550163', 'Member #': '00012345' },
    // A clipped form; "Customer #" is an id column, "Customer" the name.
    { 'Customer #': '99812', Customer: 'Vale Salazar', 'Phone #': '732-555-0182 / 732-555-0000', Birthday: '1/7/74' },
  ];
  const result = reconcilePatients(practice, incoming, { algorithm: 'HYBRID', confidence: 0.8 });

  it('reads every given name after the comma, and keeps Thi Linh apart from Thi Thao', () => {
    assert.equal(matchOf(result, 0)?.entityId, 'p-linh');
  });
  it('matches a Spanish short form on one of two surnames', () => {
    assert.equal(matchOf(result, 1)?.entityId, 'p-lupe');
  });
  it('matches a clipped given name, with two numbers in one phone cell', () => {
    assert.equal(matchOf(result, 2)?.entityId, 'p-vale');
  });
});
