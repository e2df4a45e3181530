// Integers in a query string are digits. Ajv's coercion alone is Number(text), which reads "1e3"
// as 1000, "0x10" as 16 and "" as 0: a client (or a scanner) could reach pages and limits the
// schema meant to refuse, and a typo would be answered as if it were a number.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

for (const target of databaseTargets()) {
  describe(`integer query parameters on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Query Spa');
    const headers = practice.users.ADMIN.headers;
    const get = (url: string) => app.inject({ url, headers });

    test('a number in exponent, hex, signed, spaced or empty form is a 400 naming the field, on every list route', async () => {
      for (const route of ['/v1/patients', '/v1/users', '/v1/services', '/v1/appointments', '/v1/audit-events']) {
        for (const [name, text] of [['page', '1e3'], ['limit', '1e1'], ['page', '0x10'], ['limit', '+5'], ['page', ' 2'], ['limit', ''], ['page', '2.0'], ['limit', '1_0']]) {
          const response = await get(`${route}?${name}=${encodeURIComponent(text!)}`);
          assert.equal(response.statusCode, 400, `${route}?${name}=${text} → ${response.body}`);
          const { error } = response.json() as { error: { code: string; details: Array<{ field: string; message: string }> } };
          assert.equal(error.code, 'VALIDATION_ERROR');
          assert.deepEqual(error.details, [{ field: name, message: 'must be a whole number written in digits' }], `${route}?${name}=${text}`);
        }
      }
    });

    test('digits still work, leading zeros included, and range checks still apply after them', async () => {
      const response = await get('/v1/users?page=01&limit=002');
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual((response.json() as { pagination: { page: number; limit: number } }).pagination.page, 1);
      assert.equal((response.json() as { pagination: { limit: number } }).pagination.limit, 2);
      const tooBig = await get('/v1/users?limit=101');
      assert.equal(tooBig.statusCode, 400);
      assert.equal((tooBig.json() as { error: { details: Array<{ field: string }> } }).error.details[0]!.field, 'limit');
      assert.equal((await get('/v1/users?page=-1')).statusCode, 400, 'a sign is read, then refused by minimum: 1');
    });

    test('one bad integer and one good one: only the bad one is named', async () => {
      const response = await get('/v1/patients?page=3&limit=1e2');
      assert.deepEqual((response.json() as { error: { details: Array<{ field: string }> } }).error.details.map((d) => d.field), ['limit']);
    });
  });
}
