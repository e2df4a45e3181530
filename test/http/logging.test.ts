// The log: one line per request with fixed fields, and redaction of secrets and patient fields
// in everything else a request logs.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { openScratchPglite } from '../helpers/databases.js';
import { REDACTED_FIELDS, REQUEST_LINE_FIELDS, serializeError } from '../../src/http/logging.js';
import { startTestApp } from '../helpers/app.js';

const db = await openScratchPglite();
after(() => db.close());

async function probeRoutes(app: FastifyInstance): Promise<void> {
  app.post('/probe/log-patient', { config: { public: true } }, async (request) => {
    request.log.info(
      { patient: { firstName: 'Probe', email: 'probe.patient@example.test', address: { city: 'Springfield' } }, token: 'tok_probe_secret', status: 'VIP' },
      'probe',
    );
    return { ok: true };
  });
}

const t = await startTestApp(db, {}, { plugins: [probeRoutes] });

describe('request log line', () => {
  test('has exactly its fixed fields, under the request id of the response', async () => {
    const response = await t.app.inject({ url: '/health', headers: { 'x-correlation-id': 'corr-log-test' } });
    const line = t.logs.find((entry) => entry.msg === 'request completed' && entry.requestId === response.headers['x-request-id']);
    assert.ok(line, 'one line for the request');
    assert.deepEqual(Object.keys(line).sort(), ['level', 'time', 'service', 'msg', ...REQUEST_LINE_FIELDS].sort());
    assert.equal(line.correlationId, 'corr-log-test');
    assert.equal(line.method, 'GET');
    assert.equal(line.statusCode, 200);
    assert.equal(typeof line.durationMs, 'number');
  });

  test('none of its fields is a name redaction hides (it is written without the redaction pass)', () => {
    const hidden = new Set(REDACTED_FIELDS.map((field) => field.toLowerCase()));
    for (const field of REQUEST_LINE_FIELDS) assert.ok(!hidden.has(field.toLowerCase()), field);
  });

  test('a bearer token sent with a request never reaches the log', async () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2lnbmF0dXJlLWxlYWstcHJvYmU';
    const response = await t.app.inject({ url: '/v1/patients', headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.statusCode, 401);
    assert.ok(!t.rawLog().includes('c2lnbmF0dXJlLWxlYWstcHJvYmU'));
  });
});

describe('redaction of what handlers log', () => {
  test('patient fields and secrets a handler attaches to a log call are replaced', async () => {
    const response = await t.app.inject({ method: 'POST', url: '/probe/log-patient', payload: {} });
    assert.equal(response.statusCode, 200);
    const line = t.logs.find((entry) => entry.msg === 'probe' && entry.requestId === response.headers['x-request-id']);
    assert.ok(line);
    assert.deepEqual(line.patient, { firstName: '[REDACTED]', email: '[REDACTED]', address: '[REDACTED]' });
    assert.equal(line.token, '[REDACTED]');
    assert.equal(line.status, 'VIP', 'fields that identify no one are kept');
    assert.doesNotMatch(t.rawLog(), /probe\.patient@example\.test|tok_probe_secret|Springfield/);
  });
});

describe('errors in log lines', () => {
  test('an Error keeps its type, code and message; a plain { name, message } keeps both, not "[object Object]"', () => {
    const error = Object.assign(new RangeError('Maximum call stack size exceeded'), { code: 'E_DEPTH' });
    assert.deepEqual(
      { ...serializeError(error), stack: undefined },
      { type: 'RangeError', code: 'E_DEPTH', message: 'Maximum call stack size exceeded', stack: undefined },
    );
    assert.deepEqual(serializeError({ name: 'JobFailedError', message: 'engine failed' }), { type: 'JobFailedError', message: 'engine failed' });
    assert.deepEqual(serializeError('plain text'), { message: 'plain text' });
  });
});
