// Timestamps from PostgreSQL text to the API's ISO form, without a Date in between.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isoFromUtcText, utcText } from '../../src/db/timestamps.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';

describe('isoFromUtcText', () => {
  test('pads or truncates the fraction to milliseconds, as a Date would', () => {
    assert.equal(isoFromUtcText('2026-03-08 15:04:05'), '2026-03-08T15:04:05.000Z');
    assert.equal(isoFromUtcText('2026-03-08 15:04:05.5'), '2026-03-08T15:04:05.500Z');
    assert.equal(isoFromUtcText('2026-03-08 15:04:05.123'), '2026-03-08T15:04:05.123Z');
    assert.equal(isoFromUtcText('2026-03-08 15:04:05.999999'), '2026-03-08T15:04:05.999Z');
    assert.equal(isoFromUtcText('2026-03-08 15:04:05.999999'), new Date(Date.UTC(2026, 2, 8, 15, 4, 5, 999.999)).toISOString());
  });

  test('refuses text in another DateStyle or with a zone, rather than misreading it', () => {
    for (const text of ['03/08/2026 15:04:05', 'Sun Mar 08 15:04:05 2026', '2026-03-08 15:04:05+00', '2026-03-08T15:04:05', '']) {
      assert.throws(() => isoFromUtcText(text), /unexpected timestamp text/, text);
    }
  });
});

for (const target of databaseTargets()) {
  describe(`utcText on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);

    test('renders the instant in UTC whatever the session time zone', async () => {
      const instants = ['2026-03-08 01:59:59.9999+00', '2026-03-08 07:00:00-05', '2026-11-01 01:30:00.25-04', '1999-12-31 23:59:59.000001+14'];
      for (const instant of instants) {
        const { rows } = await db.transaction(async (tx) => {
          await tx.exec(`SET LOCAL TimeZone = 'Asia/Kolkata'`);
          return tx.query<{ text: string }>(`SELECT ${utcText('$1::timestamptz')} AS text`, [instant]);
        });
        const expected = new Date(instant.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'));
        assert.equal(isoFromUtcText(rows[0]!.text), expected.toISOString(), instant);
      }
    });
  });
}
