// The real server's metrics listener and tracing, from outside: GET /metrics on METRICS_PORT and
// not on the public port; one trace per request with its database spans and the request's
// correlationId (tracing started by `--import` before the app loads, spans kept in memory); and
// without OTEL_EXPORTER_OTLP_ENDPOINT, nothing of the SDK or the instrumentations loaded.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { freePort, spawnNode, startServer, tempDir, waitFor } from '../helpers/process.js';

const DATABASE_URL = process.env.DATABASE_URL;
const ADMIN = { email: 'admin@example.test', password: 'correct horse battery staple' };

test('the server serves GET /metrics on METRICS_PORT only, never on its public port', async () => {
  const metricsPort = await freePort();
  const server = await startServer({ env: { METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1' } });
  assert.match(server.stdout(), new RegExp(`Metrics: +http://127\\.0\\.0\\.1:${metricsPort}/metrics`));

  assert.equal((await fetch(`${server.baseUrl}/health`)).status, 200);
  const onPublicPort = await fetch(`${server.baseUrl}/metrics`);
  assert.equal(onPublicPort.status, 404);
  await onPublicPort.arrayBuffer();

  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(scrape.status, 200);
  const text = await scrape.text();
  assert.match(text, /^process_cpu_user_seconds_total \d/m);
  assert.match(text, /^http_requests_total\{method="GET",route="\/health",status_code="200"\} [1-9]\d*$/m);
  assert.match(text, /^db_pool_info\{driver="pglite"\} 1$/m);
  await server.stop();
});

test('a server without OTEL_EXPORTER_OTLP_ENDPOINT loads none of the OpenTelemetry SDK or instrumentations', async () => {
  // The server's own entry path: tracing decided, the app built; then the module cache is read.
  const script = `
    const { tracingRequested } = await import('./src/observability/tracing.ts');
    const { buildApp } = await import('./src/app.ts');
    const { testConfig } = await import('./src/config.ts');
    const app = await buildApp(testConfig());
    await app.inject({ url: '/health' });
    await app.close();
    const { createRequire } = await import('node:module');
    const loaded = Object.keys(createRequire(process.cwd() + '/').cache).filter((file) => file.includes('opentelemetry'));
    console.log(JSON.stringify({ tracingRequested: tracingRequested(), loaded }));
  `;
  const child = spawnNode(['--input-type=module', '-e', script], { env: { NODE_ENV: 'test' } });
  const exit = await child.waitForExit(60_000);
  assert.equal(exit.code, 0, child.stderr());
  const report = JSON.parse(child.stdout().trim().split('\n').at(-1)!) as { tracingRequested: boolean; loaded: string[] };
  assert.equal(report.tracingRequested, false);
  // prom-client requires the API package (a no-op facade, for exemplars); nothing else may load.
  assert.deepEqual(report.loaded.filter((file) => !file.includes('/node_modules/@opentelemetry/api/')), []);
});

interface RecordedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  kind: number;
  scope: string;
  attributes: Record<string, unknown>;
}

test('tracing: one trace per request, with its database spans and the correlationId', { skip: DATABASE_URL ? false : 'needs DATABASE_URL (the pg instrumentation traces PostgreSQL)' }, async () => {
  const dbName = `medspa_trace_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  after(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });
  const url = new URL(DATABASE_URL!);
  url.pathname = `/${dbName}`;
  const traceFile = join(tempDir('medspa-trace-'), 'spans.jsonl');
  const server = await startServer({
    nodeArgs: ['--import', './test/process/fixtures/tracing-memory.ts'],
    env: { DATABASE_URL: url.toString(), TRACE_FILE: traceFile, MEDSPA_ADMIN_EMAIL: ADMIN.email, MEDSPA_ADMIN_PASSWORD: ADMIN.password },
  });
  const readSpans = (): RecordedSpan[] =>
    existsSync(traceFile) ? readFileSync(traceFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as RecordedSpan) : [];
  const startupSpans = readSpans();
  // Start-up work (migrations, first start) is no request and makes no trace: only the health polls do.
  assert.deepEqual(
    startupSpans.filter((span) => span.parentSpanId === null && span.name !== 'GET /health').map((span) => span.name),
    [],
  );
  const requestSpans = () => readSpans().slice(startupSpans.length);

  const login = await fetch(`${server.baseUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-login-1' },
    body: JSON.stringify(ADMIN),
  });
  assert.equal(login.status, 200);
  const { accessToken } = (await login.json()) as { accessToken: string };
  const list = await fetch(`${server.baseUrl}/v1/patients?limit=5&q=Smith`, {
    headers: { authorization: `Bearer ${accessToken}`, 'x-correlation-id': 'corr-list-2' },
  });
  assert.equal(list.status, 200);
  await list.arrayBuffer();

  const roots = await waitFor('the two requests\' server spans', () => {
    const found = requestSpans().filter(
      (span) => span.scope === '@opentelemetry/instrumentation-http' && span.parentSpanId === null && span.name !== 'GET /health',
    );
    return found.length >= 2 ? found : null;
  });
  const spans = requestSpans();
  assert.equal(roots.length, 2, 'one root span per request');
  for (const [correlationId, route] of [['corr-login-1', '/v1/auth/login'], ['corr-list-2', '/v1/patients']] as const) {
    const root = roots.find((span) => span.attributes['app.correlation_id'] === correlationId);
    assert.ok(root, `a server span with correlationId ${correlationId}`);
    const trace = spans.filter((span) => span.traceId === root.traceId);
    const fastify = trace.find((span) => span.scope === '@fastify/otel' && span.name === 'request');
    assert.ok(fastify, 'the Fastify request span is in the trace');
    assert.equal(fastify.attributes['app.correlation_id'], correlationId);
    assert.equal(fastify.attributes['http.route'] ?? route, route);
    const queries = trace.filter((span) => span.scope === '@opentelemetry/instrumentation-pg' && span.name.startsWith('pg.query'));
    assert.ok(queries.length >= 1, `database spans in the trace of ${route}`);
    // Every span of the trace hangs off another span of the same trace.
    const ids = new Set(trace.map((span) => span.spanId));
    for (const span of trace) assert.ok(span.parentSpanId === null ? span.spanId === root.spanId : ids.has(span.parentSpanId), `${span.name} belongs to the trace`);
  }
  assert.notEqual(roots[0]!.traceId, roots[1]!.traceId, 'each request is its own trace');
  // No PHI in the spans: the search text and the bearer token appear nowhere.
  const recorded = readFileSync(traceFile, 'utf8');
  const leaks = recorded.split('\n').filter((line) => line.includes('Smith'));
  assert.deepEqual(leaks, [], 'the query string is cut from URL attributes');
  assert.ok(!recorded.includes(accessToken));
  assert.ok(!recorded.includes(ADMIN.password));
  await server.stop();
});
