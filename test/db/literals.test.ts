import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inlineParameters, sqlLiteral } from '../../src/db/literals.js';

test('strings are quoted and escaped, so a quote cannot end the literal', () => {
  assert.equal(sqlLiteral("O'Brien"), "'O''Brien'");
  assert.equal(sqlLiteral("x'); DROP TABLE patients; --"), "'x''); DROP TABLE patients; --'");
  assert.equal(sqlLiteral('back\\slash'), " E'back\\\\slash'");
});

test('numbers, booleans, null, dates, arrays and objects have fixed renderings', () => {
  assert.equal(sqlLiteral(20), '20');
  assert.equal(sqlLiteral(-5), '(-5)');
  assert.equal(sqlLiteral(true), 'true');
  assert.equal(sqlLiteral(null), 'NULL');
  assert.equal(sqlLiteral(new Date('2026-01-02T03:04:05Z')), "'2026-01-02T03:04:05.000Z'");
  assert.equal(sqlLiteral(['a', "b'c"]), "ARRAY['a', 'b''c']");
  assert.equal(sqlLiteral([]), "'{}'");
  assert.equal(sqlLiteral({ a: "it's" }), `'{"a":"it''s"}'`);
  assert.throws(() => sqlLiteral(Number.NaN), TypeError);
  assert.throws(() => sqlLiteral(() => 1), TypeError);
});

test('placeholders are replaced in one pass: a value that looks like a placeholder stays text', () => {
  assert.equal(inlineParameters('SELECT $1, $2, $10', ['$2', 7, 1, 1, 1, 1, 1, 1, 1, 'ten']), "SELECT '$2', 7, 'ten'");
  assert.throws(() => inlineParameters('SELECT $3', [1]), RangeError);
});

test('a NUL character is refused before it can cut a simple-protocol message short', () => {
  assert.throws(() => sqlLiteral('abc\u0000; DROP TABLE x'), /NUL/);
  assert.throws(() => inlineParameters('SELECT $1', [['ok', 'no\u0000']]), /NUL/);
});
