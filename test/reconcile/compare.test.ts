import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareDates, compareEmails, compareGivenNames, comparePhones, compareSurnames, isAdjacentTransposition, isClippedForm,
  MISSING, type NameValue,
} from '../../src/reconcile/engine/compare.js';
import { normaliseEmail, normalisePhone, nameTokens } from '../../src/reconcile/engine/normalise.js';
import { comparePeople, F } from '../../src/reconcile/engine/features.js';
import { emptyRecord } from '../../src/reconcile/engine/fields.js';
import { preparePerson } from '../../src/reconcile/engine/prepare.js';

const name = (value: string): NameValue => {
  const tokens = nameTokens(value);
  return { joined: tokens.join(''), tokens };
};
const emails = (...values: string[]) => values.map((v) => normaliseEmail(v)!);
const phones = (...values: string[]) => values.map((v) => normalisePhone(v)!);

describe('given-name comparator', () => {
  it('grades exact, nickname, typo, initial and different', () => {
    assert.equal(compareGivenNames(name('Elizabeth'), name('ELIZABETH')).level, 0);
    assert.equal(compareGivenNames(name('Elizabeth'), name('Liz')).level, 1);
    assert.equal(compareGivenNames(name('Bill'), name('William')).level, 1);
    assert.equal(compareGivenNames(name('Katherine'), name('Katherien')).level, 2);
    assert.equal(compareGivenNames(name('J'), name('Jennifer')).level, 3);
    assert.equal(compareGivenNames(name('Emma'), name('Rachel')).level, 4);
  });
  it('takes a clipped short form as a variant, but not a name one letter longer', () => {
    // Names the nickname table does not list: the clipping itself is the evidence.
    assert.equal(compareGivenNames(name('Anto'), name('Antonella')).level, 2);
    assert.equal(compareGivenNames(name('Marisol'), name('Mari')).level, 2);
    assert.equal(compareGivenNames(name('Sanj'), name('Sanjana')).level, 2);
    assert.ok(isClippedForm('venkat', 'venkatesh'));
    assert.equal(isClippedForm('paul', 'paula'), false);
    assert.equal(isClippedForm('al', 'alfonso'), false);
  });
  it('keeps two different names after the same first word apart (Thi Lan / Thi Thao, Mary Kate / Mary Ashley)', () => {
    assert.equal(compareGivenNames(name('Thi Lan'), name('Thị Thảo')).level, 3);
    assert.equal(compareGivenNames(name('Mary Kate'), name('Mary Ashley')).level, 3);
    assert.equal(compareGivenNames(name('Maria Elena'), name('Maria E')).level, 1);
    assert.equal(compareGivenNames(name('Maria Elena'), name('Maria')).level, 1);
    assert.equal(compareGivenNames(name('Thi Linh'), name('Linh')).level, 2);
  });
  it('treats a missing name as missing, not as disagreement', () => {
    assert.equal(compareGivenNames(null, name('Ann')).level, MISSING);
  });
});

describe('surname comparator', () => {
  it('grades typos and double-barrelled names, and accepts a maiden name', () => {
    assert.equal(compareSurnames(name("O'Brien"), name('OBRIEN')).level, 0);
    assert.equal(compareSurnames(name('Harrington'), name('Harrinton')).level, 1);
    assert.equal(compareSurnames(name('Garcia'), name('Garcia-Lopez')).level, 1);
    assert.equal(compareSurnames(name('Nguyen'), name('Smith')).level, 3);
    assert.equal(compareSurnames(name('Miller'), name('Novak'), [name('Miller')]).level, 0);
  });
});

describe('date comparator', () => {
  it('accepts a day-month swap and a one-digit typo as near agreement', () => {
    assert.equal(compareDates(['19850304'], ['19850403']).level, 1);
    assert.equal(compareDates(['19850304'], ['19850314']).level, 1);
    assert.equal(compareDates(['19850304'], ['19580304']).level, 1); // transposed year digits
  });
  it('agrees exactly when either reading of an ambiguous date matches', () => {
    assert.equal(compareDates(['19850304', '19850403'], ['19850403']).level, 0);
  });
  it('grades two of three parts and disagreement', () => {
    assert.equal(compareDates(['19850304'], ['19850322']).level, 2);
    assert.equal(compareDates(['19850304'], ['19621119']).level, 3);
  });
  it('detects adjacent transpositions only', () => {
    assert.ok(isAdjacentTransposition('1984', '1948'));
    assert.equal(isAdjacentTransposition('1984', '4981'), false);
  });
});

describe('email and phone comparators', () => {
  it('matches plus-tags, dots and case as the same mailbox', () => {
    assert.equal(compareEmails(emails('Jane.Doe+alle@gmail.com'), emails('janedoe@gmail.com')).level, 0);
  });
  it('sees the same mailbox name at another provider as partial agreement', () => {
    assert.equal(compareEmails(emails('jdoe1984@yahoo.com'), emails('jdoe1984@gmail.com')).level, 1);
    assert.equal(compareEmails(emails('jdoe1984@yahoo.com'), emails('someone@gmail.com')).level, 2);
  });
  it('compares mailbox names across providers without the dots Gmail ignores', () => {
    assert.equal(compareEmails(emails('k.m.doe84@gmail.com'), emails('k.m.doe84@icloud.com')).level, 1);
  });
  it('matches phone formats, and a wrong digit as partial agreement', () => {
    assert.equal(comparePhones(phones('(555) 201-3040'), phones('+15552013040')).level, 0);
    assert.equal(comparePhones(phones('555-201-3041'), phones('+15552013040')).level, 1);
    assert.equal(comparePhones(phones('555-999-1111'), phones('+15552013040')).level, 2);
  });
});

describe('person comparison', () => {
  const person = (first: string, last: string) => {
    const record = emptyRecord();
    record.firstName = first;
    record.lastName = last;
    return preparePerson(record);
  };
  it('recognises first and last names given the wrong way round', () => {
    const comparison = comparePeople(person('Siggins', 'Barnaby'), person('Barnaby', 'Siggins'));
    assert.equal(comparison.swappedNames, true);
    assert.equal(comparison.levels[F.given], 0);
    assert.equal(comparison.levels[F.surname], 0);
  });
});

describe('first names with two letters swapped', () => {
  it('reads "Zeo" for "Zoe" as a typo, not another name', () => {
    const name = (joined: string): NameValue => ({ joined, tokens: [joined] });
    assert.equal(compareGivenNames(name('zeo'), name('zoe')).level, 2);
    assert.equal(compareGivenNames(name('zoe'), name('eoz')).level, 4);
  });
});
