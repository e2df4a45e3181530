import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { areNicknames, parseNicknameTable } from '../../src/reconcile/engine/nicknames.js';
import {
  nameTokens, normaliseEmail, normalisePhone, parseAmountCents, parseDateReadings, splitEmailCell, splitFullName,
  splitPhoneCell,
} from '../../src/reconcile/engine/normalise.js';
import { foldText } from '../../src/reconcile/engine/text.js';

const NOW = new Date('2025-06-01T00:00:00Z');

describe('text folding', () => {
  it('strips diacritics, case and punctuation', () => {
    assert.equal(foldText('  Zoë   ÉLAN-Ødegård '), 'zoe elan odegard');
    assert.equal(foldText("O'Brien"), 'obrien');
  });
  it('drops titles and suffixes from names', () => {
    assert.deepEqual(nameTokens('Dr. Anne-Marie Smith Jr.'), ['anne', 'marie', 'smith']);
  });
  it('splits "Last, First" and "First Middle Last"', () => {
    assert.deepEqual(splitFullName('Garcia, Maria Elena'), { first: 'maria', middle: 'elena', last: 'Garcia' });
    assert.deepEqual(splitFullName('Maria Elena Garcia'), { first: 'maria', middle: 'elena', last: 'garcia' });
  });
});

describe('nicknames', () => {
  it('knows the common English short forms', () => {
    for (const [a, b] of [['elizabeth', 'liz'], ['elizabeth', 'beth'], ['elizabeth', 'betsy'], ['william', 'bill'],
      ['robert', 'bob'], ['katherine', 'kate'], ['catherine', 'cathy'], ['margaret', 'peggy'], ['margaret', 'maggie']]) {
      assert.ok(areNicknames(a as string, b as string), `${a} ~ ${b}`);
    }
  });
  it('knows common Spanish short forms', () => {
    for (const [a, b] of [['guadalupe', 'lupe'], ['dolores', 'lola'], ['jose', 'pepe'], ['francisco', 'paco'],
      ['rosario', 'charo'], ['jesus', 'chuy'], ['beatriz', 'bea'], ['leticia', 'lety'], ['ignacio', 'nacho']]) {
      assert.ok(areNicknames(a as string, b as string), `${a} ~ ${b}`);
    }
    assert.equal(areNicknames('mari', 'majo'), false);
  });
  it('is not transitive: twins Emma and Emily stay apart though both are "Em"', () => {
    assert.ok(areNicknames('emily', 'em'));
    assert.ok(areNicknames('emma', 'em'));
    assert.equal(areNicknames('emma', 'emily'), false);
  });
  it('parses the data file format with comments', () => {
    const table = parseNicknameTable('# comment\nrobert bob bobby\nroberta bobbie\n');
    assert.ok(areNicknames('robert', 'bobby', table));
    assert.equal(areNicknames('robert', 'roberta', table), false);
  });
});

describe('phone numbers to E.164 (default US)', () => {
  const cases: [string, string][] = [
    ['(555) 201-3040', '+15552013040'],
    ['555.201.3040', '+15552013040'],
    ['1-555-201-3040', '+15552013040'],
    ['+1 555 201 3040', '+15552013040'],
    ['001 555 201 3040', '+15552013040'],
    ['15552013040', '+15552013040'],
    ['555-201-3040 ext. 12', '+15552013040'],
    ['+44 20 7946 0000', '+442079460000'],
  ];
  for (const [input, expected] of cases) {
    it(`reads ${input}`, () => assert.equal(normalisePhone(input)?.e164, expected));
  }
  it('keeps only the last seven digits of a local number', () => {
    assert.deepEqual(normalisePhone('201-3040'), { e164: null, last7: '2013040' });
  });
  it('rejects junk and placeholders', () => {
    assert.equal(normalisePhone('n/a'), null);
    assert.equal(normalisePhone('000-000-0000'), null);
  });
});

describe('email canonical forms', () => {
  it('lower-cases and drops +tags', () => {
    assert.equal(normaliseEmail(' Jane.Doe+spa@Example.com ')?.canonical, 'jane.doe@example.com');
  });
  it('ignores Gmail dots and folds googlemail.com', () => {
    assert.equal(normaliseEmail('j.a.n.e.doe@googlemail.com')?.canonical, 'janedoe@gmail.com');
  });
  it('rejects what is not an address', () => {
    assert.equal(normaliseEmail('jane at example'), null);
  });
});

describe('dates in several formats', () => {
  it('reads ISO, FEBRL YYYYMMDD and ISO date-times', () => {
    assert.deepEqual(parseDateReadings('1984-09-28', 'birth', NOW), ['19840928']);
    assert.deepEqual(parseDateReadings('19840928', 'birth', NOW), ['19840928']);
    assert.deepEqual(parseDateReadings('2024-03-05T14:30:00Z', 'recent', NOW), ['20240305']);
  });
  it('returns both readings of an ambiguous day/month, US first', () => {
    assert.deepEqual(parseDateReadings('03/04/1985', 'birth', NOW), ['19850304', '19850403']);
  });
  it('returns one reading when the day is above 12', () => {
    assert.deepEqual(parseDateReadings('25/04/1985', 'birth', NOW), ['19850425']);
    assert.deepEqual(parseDateReadings('04/25/1985', 'birth', NOW), ['19850425']);
  });
  it('reads two-digit years as past for birth dates and recent for transactions', () => {
    assert.deepEqual(parseDateReadings('7/21/78', 'birth', NOW), ['19780721']);
    assert.deepEqual(parseDateReadings('7/21/05', 'birth', NOW), ['20050721']);
    assert.deepEqual(parseDateReadings('7/21/24', 'recent', NOW), ['20240721']);
  });
  it('reads month names', () => {
    assert.deepEqual(parseDateReadings('March 5, 1984', 'birth', NOW), ['19840305']);
    assert.deepEqual(parseDateReadings('5 Mar 1984', 'birth', NOW), ['19840305']);
  });
  it('keeps the digits of a corrupted eight-digit date for typo comparison', () => {
    assert.deepEqual(parseDateReadings('19841328', 'birth', NOW), ['19841328']);
  });
  it('gives nothing for junk', () => {
    assert.deepEqual(parseDateReadings('unknown', 'birth', NOW), []);
  });
});

describe('amounts', () => {
  it('reads money text as cents', () => {
    assert.equal(parseAmountCents('$1,250.50'), 125050);
    assert.equal(parseAmountCents(45), 4500);
    assert.equal(parseAmountCents('(20.00)'), -2000);
  });
});

describe('contact cells', () => {
  it('drops an RFC 3966 ";ext=" extension', () => {
    assert.equal(normalisePhone('+1-555-201-3040;ext=12')?.e164, '+15552013040');
  });
  it('splits a cell holding two phone numbers, and leaves a single number with its extension alone', () => {
    assert.deepEqual(splitPhoneCell('555-201-3040 / 555-201-9999'), ['555-201-3040', '555-201-9999']);
    assert.deepEqual(splitPhoneCell('h: (555) 201-3040, c: 555.201.9999'), ['h: (555) 201-3040', 'c: 555.201.9999']);
    assert.deepEqual(splitPhoneCell('+1 (555) 201-3040 x12'), ['+1 (555) 201-3040 x12']);
    assert.deepEqual(splitPhoneCell('+1-555-201-3040;ext=12'), ['+1-555-201-3040;ext=12']);
  });
  it('finds every address in an e-mail cell', () => {
    assert.deepEqual(splitEmailCell('a.b@example.com; c@example.org'), ['a.b@example.com', 'c@example.org']);
    assert.deepEqual(splitEmailCell('Jane Doe <jane@example.com>'), ['jane@example.com']);
    assert.deepEqual(splitEmailCell('jane@example.com'), ['jane@example.com']);
  });
});
