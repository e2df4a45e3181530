// Exports as clinics really send them: a whole name in one cell in either order, a birth date split
// over three columns, column names in Spanish. Each must be read without a fieldMapping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconcilePatients, type PracticePatient } from '../../src/reconcile/engine/engine.js';
import { recogniseKey, recogniseRecord } from '../../src/reconcile/engine/fields.js';
import { preparePerson } from '../../src/reconcile/engine/prepare.js';
import { describeColumns } from '../../src/reconcile/input/columns.js';

// Made-up people.
const PRACTICE: PracticePatient[] = [
  { id: 'p-dang', firstName: 'Thi Lan', lastName: 'Dang', dateOfBirth: '1986-04-17', email: null, phoneNumber: null, address: { line1: '19 Sagebrush Ct', postalCode: '78704' } },
  { id: 'p-dang-other', firstName: 'Thi Thao', lastName: 'Dang', dateOfBirth: '1990-08-02', email: null, phoneNumber: null, address: { line1: '7 Canyon Rd', postalCode: '78745' } },
  { id: 'p-smith', firstName: 'Mary Ann', lastName: 'Smith', dateOfBirth: '1972-10-05', email: null, phoneNumber: null, address: { line1: '3 Birch Ln', postalCode: '80302' } },
  { id: 'p-smith-other', firstName: 'Mary', lastName: 'Smithers', dateOfBirth: '1972-10-05', email: null, phoneNumber: null, address: { line1: '90 Pine St', postalCode: '80301' } },
  { id: 'p-ruiz', firstName: 'Guadalupe', lastName: 'Ruiz', dateOfBirth: '1979-01-23', email: 'lupe.ruiz@example.com', phoneNumber: '+15125550142', address: { line1: '210 Mission St', city: 'Austin', state: 'TX', postalCode: '78701' } },
];

function matchOf(row: Record<string, unknown>, practice: PracticePatient[] = PRACTICE): { entityId: string; confidence: number } | undefined {
  const result = reconcilePatients(practice, [row], { algorithm: 'HYBRID', confidence: 0.5 });
  return result.matches[0];
}

describe('a whole name in one cell, without a comma', () => {
  it('reads "Thi Lan Dang" given names first: first name Thi Lan, not Thi', () => {
    const person = preparePerson(recogniseRecord({ Name: 'Thi Lan Dang' })!);
    assert.deepEqual(person.given?.tokens, ['thi', 'lan']);
    assert.deepEqual(person.surname?.tokens, ['dang']);
    const match = matchOf({ Name: 'Thi Lan Dang', DOB: '04/17/1986' });
    assert.equal(match?.entityId, 'p-dang');
    assert.ok(match!.confidence >= 0.8, `${match?.confidence}`);
  });

  it('matches "Mary Ann Smith" and "Smith, Mary Ann" to the same patient', () => {
    for (const name of ['Mary Ann Smith', 'Smith, Mary Ann']) {
      const match = matchOf({ 'Patient Name': name, DOB: '1972-10-05', Zip: '80302' });
      assert.equal(match?.entityId, 'p-smith', name);
      assert.ok(match!.confidence >= 0.8, `${name}: ${match?.confidence}`);
    }
  });

  it('tells "Thi Thao Dang" from the patient Thi Lan Dang by name alone', () => {
    // Read as first name "Thi", the row would fit both Dangs equally (about 50% each).
    const match = matchOf({ Name: 'Thi Thao Dang' });
    assert.equal(match?.entityId, 'p-dang-other');
    assert.ok(match!.confidence >= 0.8, `${match?.confidence}`);
  });

  it('also reads the surname-first order "Dang Thi Thao": first name Thi Thao, surname Dang, both exact', () => {
    const match = reconcilePatients(PRACTICE, [{ 'Client Name': 'Dang Thi Thao' }], { algorithm: 'HYBRID', confidence: 0.5 }).matches[0];
    assert.equal(match?.entityId, 'p-dang-other');
    assert.deepEqual([match?.fieldScores.firstName, match?.fieldScores.lastName], [1, 1]);
  });
});

describe('a birth date split over three columns', () => {
  const cases: Record<string, unknown>[] = [
    { 'First Name': 'Guadalupe', 'Last Name': 'Ruiz', 'Birth Month': '1', 'Birth Day': '23', 'Birth Year': '1979' },
    { 'First Name': 'Guadalupe', 'Last Name': 'Ruiz', 'DOB Month': 'January', 'DOB Day': '23', 'DOB Year': '1979' },
    { Nombre: 'Guadalupe', Apellido: 'Ruiz', 'Día': '23', 'Mes': 'enero', 'Año': '1979' },
    { 'First Name': 'Guadalupe', 'Last Name': 'Ruiz', day: 23, month: 1, year: 79 },
  ];
  for (const row of cases) {
    it(`joins ${Object.keys(row).slice(2).join(' / ')} into one date of birth`, () => {
      assert.deepEqual(preparePerson(recogniseRecord(row)!).dob, ['19790123']);
    });
  }

  it('reports "Birth Day" beside "Birth Month" and "Birth Year" as the day, and "Birthday" alone as the whole date', () => {
    const split = describeColumns(['Birth Month', 'Birth Day', 'Birth Year'], undefined).map((c) => c.readAs);
    assert.deepEqual(split, ['birthMonth', 'birthDay', 'birthYear']);
    assert.equal(recogniseKey('Birthday'), 'dateOfBirth');
    assert.equal(recogniseKey('Birth Date (MM/DD/YYYY)'), 'dateOfBirth');
  });
});

describe('Spanish column names, without a mapping', () => {
  const header = [
    'Nombre', 'Apellido(s)', 'Segundo apellido', 'Fecha de nacimiento', 'Correo electrónico', 'Teléfono', 'Celular',
    'Dirección', 'Ciudad', 'Estado', 'Código postal', 'Número de socio', 'Sexo', 'Notas',
  ];

  it('recognises each column as its English counterpart is, and reports it in column detection', () => {
    const readings = describeColumns(header, undefined);
    assert.deepEqual(readings.map((r) => r.readAs), [
      'firstName', 'lastName', 'otherLastName', 'dateOfBirth', 'email', 'phone', 'phone',
      'addressLine1', 'city', 'state', 'postalCode', 'memberId', 'gender', null,
    ]);
    assert.deepEqual(readings.filter((r) => r.how === 'recognised').length, header.length - 1);
    assert.equal(recogniseKey('Nombre completo'), 'fullName');
  });

  it('matches a Spanish export row to the patient', () => {
    const row = {
      Nombre: 'Lupe', 'Apellido(s)': 'Ruiz', 'Fecha de nacimiento': '23/01/1979', 'Correo electrónico': 'lupe.ruiz@example.com',
      'Teléfono': '512 555 0142', 'Dirección': '210 Mission St', 'Código postal': '78701',
    };
    const match = matchOf(row);
    assert.equal(match?.entityId, 'p-ruiz');
    assert.ok(match!.confidence >= 0.8, `${match?.confidence}`);
  });
});
