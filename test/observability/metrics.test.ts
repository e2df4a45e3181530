// GET /metrics as a security and operations specification: what the figures say, that they are
// served only on their own listener, and that nothing identifying a patient, a user or a
// credential ever becomes a label value.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { loadConfig, ConfigError, testConfig } from '../../src/config.js';
import { startMetricsServer } from '../../src/observability/metrics-server.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const REDIS_URL = process.env.REDIS_URL;

/** Starts the app's metrics listener on a free port and returns a scrape function. */
async function metricsOf(app: FastifyInstance): Promise<() => Promise<string>> {
  const server = await startMetricsServer(app.metrics, { host: '127.0.0.1', port: 0, log: app.log });
  after(() => server.close());
  return async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  };
}

/** The value of one sample, e.g. sample(text, 'http_requests_total', { route: '/health' }). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** Scrapes until every named gauge reads 0 (background work drained), or 5 s pass; returns the last scrape. */
async function scrapeWhenSettled(scrape: () => Promise<string>, gauges: string[]): Promise<string> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const text = await scrape();
    if (gauges.every((name) => sample(text, name) === 0) || Date.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every label value in the exposition. */
function labelValues(text: string): string[] {
  return [...text.matchAll(/\w+="((?:[^"\\]|\\.)*)"/g)].map((match) => match[1]!);
}

for (const target of databaseTargets()) {
  describe(`metrics (${target.kind})`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, REDIS_URL ? { redisUrl: REDIS_URL } : {});
    const scrape = await metricsOf(app);
    const practice = await createTestPractice(app);
    const admin = practice.users.ADMIN.headers;

    test('labels never carry a patient name, email, id, query text or token (a scrape after requests full of them)', async () => {
      const lastName = `Zebulon${[...randomBytes(6)].map((byte) => String.fromCharCode(97 + (byte % 26))).join('')}`;
      const email = `${lastName.toLowerCase()}@example.com`;
      const created = await app.inject({
        method: 'POST', url: '/v1/patients', headers: admin,
        payload: { firstName: 'Quentin', lastName, dateOfBirth: '1981-07-09', email },
      });
      assert.equal(created.statusCode, 201, created.body);
      const patientId = created.json<{ id: string }>().id;
      const token = practice.users.ADMIN.token;
      const responses = await Promise.all([
        app.inject({ url: `/v1/patients/${patientId}`, headers: admin }),
        app.inject({ url: `/v1/patients?q=${lastName}`, headers: admin }),
        app.inject({ url: `/v1/patients/${randomBytes(16).toString('hex')}`, headers: admin }),
        // Unmatched paths: their raw text is exactly what must not become a label.
        app.inject({ url: `/v1/lookup/${encodeURIComponent(email)}/${token}` }),
        app.inject({ url: `/${patientId}` }),
      ]);
      assert.deepEqual(responses.map((r) => r.statusCode), [200, 200, 404, 404, 404]);

      const text = await scrape();
      for (const secret of [lastName, lastName.toLowerCase(), email, patientId, token, practice.id, practice.users.ADMIN.id, 'Quentin']) {
        assert.ok(!text.includes(secret), `the exposition contains ${secret}`);
      }
      // Every route label is a registered pattern or the one fixed value for no route.
      const patterns = new Set(app.routeTable.map((route) => route.url));
      for (const line of text.split('\n').filter((l) => l.startsWith('http_request'))) {
        const route = /route="([^"]*)"/.exec(line)?.[1];
        assert.ok(route === '(unmatched)' || patterns.has(route!), `route label ${route} is not a pattern`);
      }
      assert.ok(sample(text, 'http_requests_total', { method: 'GET', route: '/v1/patients/:patientId', status_code: '200' })! >= 1);
      assert.ok(sample(text, 'http_requests_total', { method: 'GET', route: '/v1/patients/:patientId', status_code: '404' })! >= 1);
      assert.ok(sample(text, 'http_requests_total', { route: '(unmatched)', status_code: '404' })! >= 2);
      assert.ok(sample(text, 'http_request_duration_seconds_count', { method: 'POST', route: '/v1/patients', status_code: '201' })! >= 1);
      assert.ok(sample(text, 'http_request_duration_seconds_bucket', { route: '/v1/patients', le: '+Inf' })! >= 1);
      // No label value anywhere looks like an id, an email or a token.
      for (const value of labelValues(text)) {
        assert.doesNotMatch(value, /[0-9a-f]{8}-[0-9a-f]{4}-|@|^ey[A-Za-z0-9_-]{10,}/, `label value ${value}`);
      }
    });

    test('GET /metrics on the public API port is a 404: the figures are only on their own listener', async () => {
      const response = await app.inject({ url: '/metrics' });
      assert.equal(response.statusCode, 404);
      assert.equal(response.json<{ error: { code: string } }>().error.code, 'NOT_FOUND');
      assert.equal((await app.inject({ url: '/v1/metrics', headers: admin })).statusCode, 404);
    });

    test('database pool usage and query latency are reported for the driver in use', async () => {
      await app.inject({ url: '/v1/patients', headers: admin });
      const text = await scrape();
      assert.equal(sample(text, 'db_pool_info', { driver: target.kind }), 1);
      assert.ok(sample(text, 'db_pool_max_connections')! >= 1);
      assert.ok(sample(text, 'db_pool_open_connections')! >= 1);
      assert.equal(sample(text, 'db_pool_waiting'), 0);
      assert.ok(sample(text, 'db_query_duration_seconds_count', { kind: 'transaction', outcome: 'ok' })! > 0);
      assert.ok(sample(text, 'db_query_duration_seconds_count', { kind: 'statement', outcome: 'ok' })! > 0);
      // A statement the database refuses counts as an error.
      await assert.rejects(db.query('SELECT * FROM no_such_table'));
      assert.ok(sample(await scrape(), 'db_query_duration_seconds_count', { kind: 'statement', outcome: 'error' })! >= 1);
    });

    test('the breaker, the worker pool, the audit writer and the event backlogs are reported', async () => {
      // The earlier tests' patient.created event and read audits are committed and sequenced in
      // the background; the backlogs must drain to 0 on their own, not merely start there.
      const text = await scrapeWhenSettled(scrape, ['audit_writer_backlog', 'events_outbox_unsequenced', 'webhook_deliveries_pending']);
      assert.equal(sample(text, 'circuit_breaker_state', { breaker: 'reconcile', state: 'closed' }), 1);
      assert.equal(sample(text, 'circuit_breaker_state', { breaker: 'reconcile', state: 'open' }), 0);
      assert.equal(sample(text, 'circuit_breaker_consecutive_failures', { breaker: 'reconcile' }), 0);
      assert.equal(sample(text, 'reconcile_pool_queue_limit'), app.config.reconcile.queueLimit);
      assert.equal(sample(text, 'reconcile_jobs_total', { outcome: 'completed' }), 0);
      assert.equal(sample(text, 'audit_writer_backlog'), 0);
      assert.equal(sample(text, 'events_outbox_unsequenced'), 0);
      assert.equal(sample(text, 'webhook_deliveries_pending'), 0);
      assert.equal(sample(text, 'webhook_delivery_attempts_total', { outcome: 'delivered' }), 0);
    });

    test('a reconciliation run shows in the job totals', async () => {
      const response = await app.inject({
        method: 'POST', url: '/v1/ai/reconcile', headers: admin,
        payload: { data: [{ firstName: 'Nobody', lastName: 'Known', dateOfBirth: '1970-01-01' }] },
      });
      assert.equal(response.statusCode, 200, response.body);
      const text = await scrape();
      assert.equal(sample(text, 'reconcile_jobs_total', { outcome: 'completed' }), 1);
      assert.ok(sample(text, 'reconcile_pool_workers')! >= 1);
    });

    if (REDIS_URL) {
      test('Redis availability is 1 while the connection is ready', async () => {
        assert.equal(sample(await scrape(), 'redis_up'), 1);
      });
    }
  });
}

describe('metrics, one process', async () => {
  const db = await migratedDatabase(databaseTargets()[0]!);

  test('two apps in one process keep their own registries (no collision, no shared counts)', async () => {
    const first = await startTestApp(db);
    const second = await startTestApp(db);
    const [scrapeFirst, scrapeSecond] = [await metricsOf(first.app), await metricsOf(second.app)];
    await first.app.inject({ url: '/health' });
    await first.app.inject({ url: '/health' });
    await second.app.inject({ url: '/health' });
    assert.equal(sample(await scrapeFirst(), 'http_requests_total', { route: '/health', status_code: '200' }), 2);
    assert.equal(sample(await scrapeSecond(), 'http_requests_total', { route: '/health', status_code: '200' }), 1);
  });

  test('rate-limit refusals are counted by budget, never by client', async () => {
    const { app } = await startTestApp(db, {
      rateLimitEnabled: true,
      rateLimits: { ...testConfig().rateLimits, global: { max: 2, windowMs: 60_000 } },
    });
    const scrape = await metricsOf(app);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await app.inject({ url: '/versions', remoteAddress: '10.9.8.7' })).statusCode);
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    const text = await scrape();
    assert.equal(sample(text, 'rate_limit_refusals_total', { limit: 'global' }), 2);
    assert.equal(sample(text, 'rate_limit_refusals_total', { limit: 'login' }), 0);
    assert.ok(!text.includes('10.9.8.7'));
  });

  test('METRICS_PORT=0 measures nothing per request', async () => {
    const { app } = await startTestApp(db, { metrics: { enabled: false, host: '127.0.0.1', port: 0 } });
    await app.inject({ url: '/health' });
    assert.equal(app.metrics.enabled, false);
    assert.equal(await app.metrics.registry.metrics(), '\n');
  });

  test('the listener answers only GET /metrics', async () => {
    const { app } = await startTestApp(db);
    const server = await startMetricsServer(app.metrics, { host: '127.0.0.1', port: 0, log: app.log });
    after(() => server.close());
    const base = `http://127.0.0.1:${server.port}`;
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 404);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.ok(sample(text, 'process_resident_memory_bytes')! > 0, 'process metrics are collected');
    assert.ok(sample(text, 'nodejs_eventloop_lag_seconds') !== undefined);
  });
});

describe('metrics configuration', () => {
  const env = { NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32) };

  test('defaults to 127.0.0.1:9464, never the public interface', () => {
    assert.deepEqual(loadConfig(env).metrics, { enabled: true, host: '127.0.0.1', port: 9464 });
  });

  test('METRICS_PORT=0 switches metrics off; METRICS_HOST moves the listener', () => {
    assert.equal(loadConfig({ ...env, METRICS_PORT: '0' }).metrics.enabled, false);
    assert.equal(loadConfig({ ...env, METRICS_HOST: '10.0.0.5' }).metrics.host, '10.0.0.5');
  });

  test('refuses a METRICS_PORT equal to PORT (the figures would share the public listener) or out of range', () => {
    assert.throws(() => loadConfig({ ...env, PORT: '8080', METRICS_PORT: '8080' }), (error: unknown) => error instanceof ConfigError && error.variable === 'METRICS_PORT');
    assert.throws(() => loadConfig({ ...env, METRICS_PORT: '70000' }), /METRICS_PORT/);
    assert.throws(() => loadConfig({ ...env, METRICS_PORT: 'abc' }), /METRICS_PORT/);
  });
});
