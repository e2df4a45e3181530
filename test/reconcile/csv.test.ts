// The CSV reader alone: encodings, separators, quoting, limits, and where a broken file breaks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectDelimiter, detectEncoding, headerNames, readCsv } from '../../src/reconcile/input/csv.js';
import type { AppError } from '../../src/http/errors.js';

async function* chunks(...parts: (string | Buffer)[]) {
  for (const part of parts) yield Buffer.isBuffer(part) ? part : Buffer.from(part);
}
const LIMITS = { maxRows: 10, maxBytes: 1_000_000, onRowError: 'fail' as const };
const refusal = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (error) {
    return error as AppError;
  }
  throw new Error('expected a refusal');
};

test('a BOM, semicolons, CRLF and a quoted field with an embedded newline and separator', async () => {
  const parsed = await readCsv(chunks('\uFEFFFirst Name;Notes\r\nAnna;"two\nlines; one field"\r\n'), LIMITS);
  assert.deepEqual(parsed.header, ['First Name', 'Notes']);
  assert.deepEqual(parsed.rows, [{ 'First Name': 'Anna', Notes: 'two\nlines; one field' }]);
  assert.equal(parsed.delimiter, ';');
});

test('a multi-byte character split across chunks is read whole', async () => {
  const bytes = Buffer.from('name\nZoë\n');
  const parsed = await readCsv(chunks(bytes.subarray(0, 8), bytes.subarray(8)), LIMITS);
  assert.deepEqual(parsed.rows, [{ name: 'Zoë' }]);
  assert.equal(parsed.encoding, 'utf-8');
});

test('Windows-1252 detected from the bytes; declared UTF-8 with such bytes is refused at its line and column', async () => {
  const latin = Buffer.concat([Buffer.from('name\n'), Buffer.from([0x5a, 0x6f, 0xeb]), Buffer.from('\n')]);
  assert.deepEqual((await readCsv(chunks(latin), LIMITS)).rows, [{ name: 'Zoë' }]);
  const error = await refusal(readCsv(chunks(latin), { ...LIMITS, charset: 'utf-8' }));
  assert.match(error.message, /line 2, column 3/);
  assert.equal(detectEncoding(Buffer.from([0xc3]), false), 'utf-8', 'a character cut by the sniff window is forgiven');
  assert.equal(detectEncoding(Buffer.from([0xc3]), true), 'windows-1252');
});

test('separators: tab, pipe, comma by default; quoted separators in the header do not count', () => {
  assert.equal(detectDelimiter('a\tb\tc\n1,2'), '\t');
  assert.equal(detectDelimiter('a|b\n'), '|');
  assert.equal(detectDelimiter('"a;b",c\n'), ',');
  assert.equal(detectDelimiter('single'), ',');
});

test('blank and repeated header names are told apart', () => {
  assert.deepEqual(headerNames(['Phone', '', 'phone']), ['Phone', 'Column 2', 'phone (2)']);
});

test('a wrong column count names the line; skip keeps the other rows', async () => {
  const text = 'a,b\n1,2\n3\n4,5\n';
  assert.match((await refusal(readCsv(chunks(text), LIMITS))).message, /line 3: has 1 fields where the header has 2/);
  const skipped = await readCsv(chunks(text), { ...LIMITS, onRowError: 'skip' });
  assert.equal(skipped.rows.length, 2);
  assert.deepEqual(skipped.badRows, [{ line: 3, column: null, message: 'has 1 fields where the header has 2' }]);
});

test('an unterminated quote names the line where it opened and its column', async () => {
  const error = await refusal(readCsv(chunks('a,b\n1,2\n3,"4\n5,6\n'), LIMITS));
  assert.match(error.message, /line 3, column "b"/);
});

test('limits: rows and bytes are 413; an empty file is 400', async () => {
  const rows = await refusal(readCsv(chunks(`a\n${'1\n'.repeat(11)}`), LIMITS));
  assert.equal(rows.statusCode, 413);
  const bytes = await refusal(readCsv(chunks('a\n', 'x\n'.repeat(300_000), 'x\n'.repeat(300_000)), { ...LIMITS, maxRows: 1_000_000 }));
  assert.equal(bytes.statusCode, 413);
  assert.equal((await refusal(readCsv(chunks(''), LIMITS))).statusCode, 400);
});
