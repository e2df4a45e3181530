// /v2 (beta) serves the same stored patients in the v2 shape (blueprint 5.2): contact details under
// `contact`, v1's phoneNumber still present but marked deprecated. Nothing of v1 changes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

for (const target of databaseTargets()) {
  describe(`patients v2 on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Versions Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const headers = practice.users.STAFF.headers;
    const created = await app.inject({
      method: 'POST',
      url: '/v1/patients',
      headers: practice.users.ADMIN.headers,
      payload: { firstName: 'Lucía', lastName: 'Ortega', email: 'lucia.ortega@example.com', phoneNumber: '(305) 555-0199' },
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = (created.json() as { id: string }).id;

    test('v2 carries contact.phone and contact.email from the same record as v1', async () => {
      const v1 = (await app.inject({ url: `/v1/patients/${id}`, headers })).json() as Record<string, unknown>;
      const v2 = (await app.inject({ url: `/v2/patients/${id}`, headers })).json() as Record<string, unknown>;
      assert.deepEqual(v2.contact, { phone: '+13055550199', email: 'lucia.ortega@example.com' });
      assert.equal(v2.phoneNumber, v1.phoneNumber, 'the deprecated field is still sent in v2');
      assert.equal(v1.contact, undefined, 'v1 is unchanged');
      const { contact: _contact, ...rest } = v2;
      assert.deepEqual(rest, v1);
    });

    test('the v2 list pages like v1', async () => {
      const response = await app.inject({ url: '/v2/patients?limit=1', headers });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { data: Array<{ contact: object }>; pagination: { total: number } };
      assert.equal(body.data.length, 1);
      assert.equal(body.pagination.total, 1);
      assert.ok(body.data[0]?.contact);
    });

    test('practice B gets 404 for practice A’s patient through v2 too', async () => {
      assert.equal((await app.inject({ url: `/v2/patients/${id}`, headers: other.users.ADMIN.headers })).statusCode, 404);
    });

    test('v2 routes need the same permission and credentials as v1', async () => {
      assert.equal((await app.inject({ url: '/v2/patients' })).statusCode, 401);
    });

    test('/v2/openapi.json describes v2 with phoneNumber deprecated, and lints clean', async () => {
      const response = await app.inject({ url: '/v2/openapi.json' });
      assert.equal(response.statusCode, 200);
      const doc = response.json() as { info: { version: string }; servers: Array<{ url: string }>; paths: Record<string, Record<string, any>> };
      assert.equal(doc.info.version, '2.0.0-beta');
      assert.ok(doc.servers.some((s) => s.url === 'https://api.medspasync.com/v2'));
      assert.deepEqual(Object.keys(doc.paths).sort(), [
        '/patients',
        '/patients/{patientId}',
        '/webhooks',
        '/webhooks/{webhookId}',
        '/webhooks/{webhookId}/deliveries',
        '/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver',
        '/webhooks/{webhookId}/rotate-secret',
        '/webhooks/{webhookId}/test',
      ]);
      const schema = doc.paths['/patients/{patientId}']!.get.responses['200'].content['application/json'].schema;
      assert.equal(schema.properties.phoneNumber.deprecated, true);
      assert.ok(schema.properties.contact);
      const dir = mkdtempSync(join(tmpdir(), 'openapi-v2-'));
      writeFileSync(join(dir, 'openapi.json'), response.body);
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['node_modules/.bin/spectral', 'lint', join(dir, 'openapi.json'), '--ruleset', '.spectral.yaml', '--format', 'json', '--quiet'],
        { maxBuffer: 10_000_000 },
      ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
      const errors = (JSON.parse(stdout || '[]') as Array<{ severity: number }>).filter((f) => f.severity === 0);
      assert.deepEqual(errors, []);
    });
  });
}
