// Versions (blueprint 5.1/5.2), health, and the generated OpenAPI document.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openScratchPglite } from '../helpers/databases.js';
import { statusOn } from '../../src/http/versions.js';
import { startTestApp } from '../helpers/app.js';

const db = await openScratchPglite();
after(() => db.close());
const { app } = await startTestApp(db);

describe('versions', () => {
  test('GET /versions lists the registry: v1 stable, v2 beta', async () => {
    const response = await app.inject({ url: '/versions' });
    assert.equal(response.statusCode, 200);
    const body = response.json() as { data: Array<{ version: string; status: string }>; migrationStrategy: object };
    assert.deepEqual(
      body.data.map((v) => [v.version, v.status]),
      [
        ['v1', 'stable'],
        ['v2', 'beta'],
      ],
    );
    const v2 = (body.data as unknown as Array<{ version: string; features: string[]; featureStatus: Record<string, string> }>).find((v) => v.version === 'v2')!;
    assert.deepEqual(Object.keys(v2.featureStatus).sort(), [...v2.features].sort(), 'every listed feature says whether it is available');
    assert.equal(v2.featureStatus.real_time_updates, 'available');
    // advanced_ai is the /v2/reconciliations workflow, for every kind of job it lists.
    assert.equal(v2.featureStatus.advanced_ai, 'available');
    for (const kind of ['PATIENTS', 'APPOINTMENTS', 'TRANSACTIONS']) {
      const refused = await app.inject({ method: 'POST', url: `/v2/reconciliations?kind=${kind}` });
      assert.equal(refused.statusCode, 401, `${kind}: the route exists and asks for credentials`);
    }
    assert.deepEqual(body.migrationStrategy, {
      backwardCompatibility: true,
      deprecationNotice: true,
      automaticUpgrade: false,
      migrationGuide: '/docs/migration',
    });
  });

  test('the migration guide is served', async () => {
    const response = await app.inject({ url: '/docs/migration' });
    assert.equal(response.statusCode, 200);
    assert.match(response.body, /phoneNumber/);
  });

  test('a version without dates sends no Deprecation or Sunset header', async () => {
    const response = await app.inject({ url: '/v1/openapi.json' });
    assert.equal(response.headers.deprecation, undefined);
    assert.equal(response.headers.sunset, undefined);
  });

  test('a version with only a sunset date shows deprecated from that date (it answers 410 by then)', () => {
    const v1 = { version: 'v1', status: 'stable' as const, features: [], featureStatus: {}, deprecationDate: null, sunsetDate: '2027-06-30' };
    assert.equal(statusOn(v1, Date.parse('2027-06-29T23:59:59Z')), 'stable');
    assert.equal(statusOn(v1, Date.parse('2027-06-30T00:00:00Z')), 'deprecated');
  });

  test('a deprecation date after the sunset date stops the start, naming the variable', () => {
    assert.throws(
      () => loadConfig({ NODE_ENV: 'test', V1_DEPRECATION_DATE: '2027-07-01', V1_SUNSET_DATE: '2027-06-30' }),
      (error: unknown) => error instanceof ConfigError && error.variable === 'V1_DEPRECATION_DATE',
    );
    assert.deepEqual(loadConfig({ NODE_ENV: 'test', V2_DEPRECATION_DATE: '2027-06-30', V2_SUNSET_DATE: '2027-06-30' }).versionDates.v2, {
      deprecationDate: '2027-06-30',
      sunsetDate: '2027-06-30',
    });
  });

  describe('a deprecated version', async () => {
    const clock = { now: Date.parse('2027-03-01T12:00:00Z') };
    const dated = await startTestApp(
      db,
      {
        versionDates: {
          v1: { deprecationDate: '2027-01-01', sunsetDate: '2027-06-30' },
          v2: { deprecationDate: null, sunsetDate: null },
        },
      },
      { now: () => clock.now },
    );

    test('announces Deprecation (RFC 9745), Sunset (RFC 8594) and links the migration guide', async () => {
      const response = await dated.app.inject({ url: '/v1/openapi.json' });
      assert.equal(response.statusCode, 200);
      assert.equal(response.headers.deprecation, `@${Date.parse('2027-01-01T00:00:00Z') / 1000}`);
      assert.equal(response.headers.sunset, 'Wed, 30 Jun 2027 00:00:00 GMT');
      assert.match(String(response.headers.link), /^<\/docs\/migration>; rel="deprecation"/);
    });

    test('/versions reports it deprecated from its deprecation date on, stable before', async () => {
      const statusOfV1 = async () =>
        ((await dated.app.inject({ url: '/versions' })).json() as { data: Array<{ version: string; status: string }> }).data.find((v) => v.version === 'v1')!.status;
      const saved = clock.now;
      clock.now = Date.parse('2026-12-31T23:59:59Z');
      assert.equal(await statusOfV1(), 'stable');
      clock.now = Date.parse('2027-01-01T00:00:00Z');
      assert.equal(await statusOfV1(), 'deprecated');
      clock.now = saved;
    });

    test('answers 410 Gone with the envelope from its sunset date (00:00 UTC, the instant Sunset names)', async () => {
      clock.now = Date.parse('2027-06-29T23:59:59Z');
      assert.equal((await dated.app.inject({ url: '/v1/openapi.json' })).statusCode, 200);
      clock.now = Date.parse('2027-06-30T00:00:00Z');
      const response = await dated.app.inject({ url: '/v1/openapi.json' });
      assert.equal(response.statusCode, 410);
      const body = response.json() as { error: { code: string; requestId: string } };
      assert.equal(body.error.code, 'GONE');
      assert.equal(body.error.requestId, response.headers['x-request-id']);
    });

    test('root paths are not affected by a version’s sunset', async () => {
      assert.equal((await dated.app.inject({ url: '/health' })).statusCode, 200);
    });
  });
});

describe('health', () => {
  test('/health answers without touching the database', async () => {
    const response = await app.inject({ url: '/health' });
    assert.equal(response.statusCode, 200);
    assert.equal((response.json() as { status: string }).status, 'ok');
  });

  test('/health/ready is 200 while the database answers', async () => {
    const response = await app.inject({ url: '/health/ready' });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual((response.json() as { checks: Record<string, unknown> }).checks.database, { ok: true });
  });

  test('/health/ready is 503 with the envelope when the database is gone', async () => {
    const lost = await openScratchPglite();
    const orphan = await startTestApp(lost);
    await lost.close();
    const response = await orphan.app.inject({ url: '/health/ready' });
    assert.equal(response.statusCode, 503);
    const body = response.json() as { error: { code: string; details: Array<{ field: string }> } };
    assert.equal(body.error.code, 'SERVICE_UNAVAILABLE');
    assert.deepEqual(body.error.details.map((d) => d.field), ['database']);
    assert.equal((await orphan.app.inject({ url: '/health' })).statusCode, 200, 'liveness is unaffected');
  });

  test('while draining before a shutdown, /health/ready is 503 and every other request is still served', async () => {
    const scratch = await openScratchPglite();
    const draining = await startTestApp(scratch);
    draining.app.lifecycle.draining = true;
    const ready = await draining.app.inject({ url: '/health/ready' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.headers['retry-after'], '1');
    assert.deepEqual((ready.json() as { error: { details: Array<{ field: string }> } }).error.details.map((d) => d.field), ['server']);
    assert.equal((await draining.app.inject({ url: '/versions' })).statusCode, 200, 'requests are not refused while draining');
    await draining.app.close();
    await scratch.close();
  });
});

describe('OpenAPI', async () => {
  const response = await app.inject({ url: '/v1/openapi.json' });
  const doc = response.json() as {
    openapi: string;
    info: { title: string; version: string; contact: object; license: object };
    servers: Array<{ url: string }>;
    components: { securitySchemes: object };
    security: object[];
    paths: Record<string, unknown>;
  };

  test('carries the blueprint’s info, servers and security schemes', () => {
    assert.equal(doc.openapi, '3.0.3');
    assert.equal(doc.info.title, 'MedSpaSync Pro API');
    assert.deepEqual(doc.info.contact, { name: 'MedSpaSync Support', email: 'support@medspasync.com' });
    assert.deepEqual(doc.info.license, { name: 'MIT', url: 'https://opensource.org/licenses/MIT' });
    const urls = doc.servers.map((s) => s.url);
    for (const url of ['https://api.medspasync.com/v1', 'https://staging-api.medspasync.com/v1', 'https://dev-api.medspasync.com/v1']) {
      assert.ok(urls.includes(url), url);
    }
    assert.deepEqual(doc.components.securitySchemes, {
      BearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      ApiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
    });
    assert.deepEqual(doc.security, [{ BearerAuth: [] }, { ApiKeyAuth: [] }]);
  });

  test('lists only this version’s paths, relative to the version’s server', () => {
    assert.ok(Object.keys(doc.paths).length >= 10, `only ${Object.keys(doc.paths).length} paths`);
    assert.ok(doc.paths['/auth/login'], 'the blueprint’s /auth/login is there');
    for (const path of Object.keys(doc.paths)) assert.ok(!path.startsWith('/v1'), path);
  });

  type Operation = { requestBody?: unknown; responses: Record<string, { headers?: Record<string, unknown> }> };
  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item as Record<string, Operation>).map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation })),
  );

  test('every operation that takes a body documents 400, 413 and 415 (what the body parser answers)', () => {
    const withBody = operations.filter(({ operation }) => operation.requestBody !== undefined);
    assert.ok(withBody.some(({ name }) => name === 'POST /ai/reconcile'));
    for (const { name, operation } of withBody) {
      for (const status of ['400', '413', '415']) assert.ok(operation.responses[status], `${name} lacks ${status}`);
    }
  });

  test('every 429 and 503 declares its Retry-After header', () => {
    let seen = 0;
    for (const { name, operation } of operations) {
      for (const status of ['429', '503']) {
        if (operation.responses[status] === undefined) continue;
        seen += 1;
        assert.ok(operation.responses[status]!.headers?.['Retry-After'], `${name} ${status}`);
      }
    }
    assert.ok(seen >= 5, `only ${seen} responses checked`);
  });

  test('every enum says its type (as the blueprint writes them)', () => {
    const untyped: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (node === null || typeof node !== 'object') return;
      const schema = node as Record<string, unknown>;
      if (Array.isArray(schema.enum) && schema.type === undefined) untyped.push(path);
      for (const [key, child] of Object.entries(schema)) walk(child, `${path}/${key}`);
    };
    walk(doc, '#');
    assert.deepEqual(untyped, []);
  });

  test('passes the Spectral OpenAPI ruleset with no errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
    const file = join(dir, 'openapi.json');
    writeFileSync(file, response.body);
    const run = promisify(execFile);
    const { stdout } = await run(
      process.execPath,
      ['node_modules/.bin/spectral', 'lint', file, '--ruleset', '.spectral.yaml', '--format', 'json', '--quiet'],
      { maxBuffer: 10_000_000 },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const findings = JSON.parse(stdout || '[]') as Array<{ severity: number; code: string; message: string; path: string[] }>;
    const errors = findings.filter((f) => f.severity === 0);
    assert.deepEqual(errors, [], JSON.stringify(errors, null, 2));
  });
});
