// Every non-2xx response, whatever produced it, is the blueprint's error envelope (4.1) with the
// same requestId as the X-Request-Id header, and no internals leak into it.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { isDatabaseUnavailable } from '../../src/http/error-handler.js';
import { AppError } from '../../src/http/errors.js';
import { newRequestId } from '../../src/http/request-context.js';
import { openScratchPglite } from '../helpers/databases.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

const probeRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/probe',
    {
      config: { public: true },
      schema: {
        body: Type.Object(
          {
            email: Type.String({ format: 'email' }),
            age: Type.Integer({ minimum: 0, maximum: 150 }),
            address: Type.Optional(Type.Object({ postalCode: Type.String({ pattern: '^[0-9]{5}$' }) })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async () => ({ ok: true }),
  );
  app.get('/v1/probe/crash', { config: { public: true } }, async () => {
    const error = new Error('relation "secret_table" does not exist at SELECT * FROM patients') as Error & {
      detail?: string;
    };
    error.detail = 'Key (email)=(jane.doe@example.com) already exists.';
    throw error;
  });
  app.get('/v1/probe/conflict', { config: { public: true } }, async () => {
    throw new AppError('PATIENT_EXISTS', 409, 'A patient with this email already exists', [
      { field: 'email', message: 'already used by patient p_1' },
    ]);
  });
};

function assertEnvelope(response: Awaited<ReturnType<FastifyInstance['inject']>>, status: number, code: string) {
  assert.equal(response.statusCode, status, response.body);
  assert.match(String(response.headers['content-type']), /^application\/json/);
  const body = response.json() as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'correlationId', 'details', 'message', 'requestId', 'timestamp']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(Array.isArray(body.error.details));
  assert.ok(!Number.isNaN(Date.parse(String(body.error.timestamp))));
  assert.equal(body.error.requestId, response.headers['x-request-id']);
  assert.equal(body.error.correlationId, response.headers['x-correlation-id']);
  return body.error as { code: string; message: string; details: Array<{ field: string; message: string }> };
}

const db = await openScratchPglite();
after(() => db.close());
const t: TestApp = await startTestApp(db, {}, { plugins: [probeRoutes] });

describe('error envelope', () => {

  test('every response carries a fresh request id and echoes a supplied correlation id', async () => {
    const first = await t.app.inject({ url: '/health', headers: { 'x-correlation-id': 'checkout-42' } });
    const second = await t.app.inject({ url: '/health' });
    assert.match(String(first.headers['x-request-id']), /^req_[0-9a-f]{24}$/);
    assert.notEqual(first.headers['x-request-id'], second.headers['x-request-id']);
    assert.equal(first.headers['x-correlation-id'], 'checkout-42');
    assert.match(String(second.headers['x-correlation-id']), /^corr_/);
  });

  test('request ids stay unique and well formed across refills of their random pool', () => {
    const ids = Array.from({ length: 2_000 }, () => newRequestId());
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^req_[0-9a-f]{24}$/);
  });

  test('a client cannot choose its request id', async () => {
    const response = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'forged' } });
    assert.notEqual(response.headers['x-request-id'], 'forged');
  });

  test('a correlation id with header-injection characters is replaced, not echoed', async () => {
    const response = await t.app.inject({ url: '/health', headers: { 'x-correlation-id': 'a b<script>' } });
    assert.match(String(response.headers['x-correlation-id']), /^corr_/);
  });

  test('unknown route is 404 NOT_FOUND', async () => {
    assertEnvelope(await t.app.inject({ url: '/v1/nowhere' }), 404, 'NOT_FOUND');
  });

  describe('errors raised while routing, before any hook runs', () => {
    const withIds = { 'x-correlation-id': 'routing-check-7' };
    function assertFullResponse(response: Awaited<ReturnType<typeof t.app.inject>>, status: number, code: string) {
      assertEnvelope(response, status, code);
      const error = (response.json() as { error: { requestId: string; correlationId: string; message: string } }).error;
      assert.equal(error.requestId, response.headers['x-request-id']);
      assert.equal(error.correlationId, 'routing-check-7');
      assert.equal(response.headers['x-correlation-id'], 'routing-check-7');
      assert.equal(response.headers['x-content-type-options'], 'nosniff');
      assert.match(String(response.headers['content-security-policy']), /default-src 'none'/);
      assert.equal(response.headers['cache-control'], 'no-store');
      return error;
    }

    /** Sends raw bytes to a listening copy of the app and reads the whole answer (the server closes). */
    async function raw(
      request: string,
      overrides: Parameters<typeof startTestApp>[1] = {},
    ): Promise<{ status: number; headers: Record<string, string>; body: string; logs: Array<Record<string, unknown>> }> {
      const listening = await startTestApp(db, overrides);
      await listening.app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const { port } = listening.app.server.address() as AddressInfo;
        const text = await new Promise<string>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => socket.write(request));
          let received = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => (received += chunk));
          socket.on('end', () => resolve(received));
          socket.on('error', reject);
        });
        const [head = '', body = ''] = text.split('\r\n\r\n');
        const [statusLine = '', ...lines] = head.split('\r\n');
        const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        return { status: Number(statusLine.split(' ')[1]), headers, body, logs: listening.logs };
      } finally {
        await listening.app.close();
      }
    }

    for (const [name, request, status, code, overrides] of [
      ['headers over the size limit', `GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
      ['a garbage request line', 'HELLO THERE\r\n\r\n', 400, 'BAD_REQUEST'],
      ['an HTTP/1.1 request without Host', 'GET /v1/patients HTTP/1.1\r\nConnection: close\r\n\r\n', 400, 'BAD_REQUEST'],
      ['Content-Length with Transfer-Encoding (request smuggling)', 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'BAD_REQUEST'],
      // Headers that never end: Node gives up after HTTP_HEADERS_TIMEOUT_MS (1 s here).
      ['headers too slow to arrive', 'GET /health HTTP/1.1\r\nHost: x\r\n', 408, 'REQUEST_TIMEOUT', { httpHeadersTimeoutMs: 1000, httpRequestTimeoutMs: 1000 }],
    ] as Array<[string, string, number, string, Parameters<typeof startTestApp>[1]?]>) {
      test(`a request Node cannot take (${name}) is a ${status} envelope with fresh ids and the security headers`, async () => {
        const answer = await raw(request, overrides);
        assert.equal(answer.status, status, answer.body);
        const body = JSON.parse(answer.body) as { error: { code: string; requestId: string; correlationId: string; details: unknown[] } };
        assert.equal(body.error.code, code);
        assert.deepEqual(body.error.details, []);
        assert.equal(body.error.requestId, answer.headers['x-request-id']);
        assert.match(body.error.requestId, /^req_[0-9a-f]{24}$/);
        assert.equal(body.error.correlationId, answer.headers['x-correlation-id']);
        assert.equal(answer.headers['x-content-type-options'], 'nosniff');
        assert.equal(answer.headers['cache-control'], 'no-store');
        assert.equal(answer.headers.connection, 'close');
        // The request id finds its log line.
        assert.ok(answer.logs.some((line) => line.requestId === body.error.requestId && line.statusCode === status), JSON.stringify(answer.logs.slice(-3)));
      });
    }

    test('an undecodable URL is a 400 envelope with the ids and the security headers, the path not echoed', async () => {
      const error = assertFullResponse(await t.app.inject({ url: '/v1/patients/%E0%A4%A', headers: withIds }), 400, 'BAD_REQUEST');
      assert.doesNotMatch(error.message, /patients|%E0/);
      const line = t.logs.find((entry) => entry.requestId === error.requestId && entry.statusCode === 400);
      assert.ok(line, 'the request id finds a log line');
      assert.doesNotMatch(JSON.stringify(line), /%E0/, 'without the path');
    });

    test('a long malformed id is the route\'s answer (401 without credentials), not a routing error', async () => {
      assertEnvelope(await t.app.inject({ url: `/v1/patients/${'a'.repeat(300)}`, headers: withIds }), 401, 'UNAUTHORIZED');
    });

    test('an absurd path segment is a 414 envelope with the ids and the security headers, the segment not echoed', async () => {
      const segment = `Jane-Doe-${'x'.repeat(3000)}`;
      const error = assertFullResponse(await t.app.inject({ url: `/v1/patients/${segment}`, headers: withIds }), 414, 'URI_TOO_LONG');
      assert.doesNotMatch(error.message, /Jane|xxxx/);
    });
  });

  test('known path with the wrong method is 405 with Allow', async () => {
    const response = await t.app.inject({ method: 'DELETE', url: '/v1/probe' });
    assertEnvelope(response, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(response.headers.allow, 'POST');
  });

  test('schema violations are 400 VALIDATION_ERROR with one detail per offending field', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      payload: { email: 'not-an-email', age: 'old', address: { postalCode: 'x' }, admin: true },
    });
    const error = assertEnvelope(response, 400, 'VALIDATION_ERROR');
    const fields = error.details.map((d) => d.field).sort();
    assert.deepEqual(fields, ['address.postalCode', 'admin', 'age', 'email']);
    assert.equal(error.details.find((d) => d.field === 'email')?.message, 'must be a valid email');
  });

  test('a missing required field is named', async () => {
    const error = assertEnvelope(
      await t.app.inject({ method: 'POST', url: '/v1/probe', payload: { age: 3 } }),
      400,
      'VALIDATION_ERROR',
    );
    assert.deepEqual(error.details, [{ field: 'email', message: 'is required' }]);
  });

  test('malformed JSON is 400 INVALID_JSON', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { 'content-type': 'application/json' },
      payload: '{"email": "a@b.co", ',
    });
    assertEnvelope(response, 400, 'INVALID_JSON');
  });

  test('an empty JSON body is 400 INVALID_JSON', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    assertEnvelope(response, 400, 'INVALID_JSON');
  });

  test('a prototype-poisoning body is refused, not merged', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { 'content-type': 'application/json' },
      payload: '{"email":"a@b.co","age":1,"__proto__":{"admin":true}}',
    });
    assertEnvelope(response, 400, 'INVALID_JSON');
  });

  test('wrong content type is 415', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { 'content-type': 'application/xml' },
      payload: '<email>a@b.co</email>',
    });
    assertEnvelope(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('a body over the limit is 413', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/probe',
      payload: { email: 'a@b.co', age: 1, pad: 'x'.repeat(1_100_000) },
    });
    assertEnvelope(response, 413, 'PAYLOAD_TOO_LARGE');
  });

  test('a typed application error keeps its status, code and details', async () => {
    const error = assertEnvelope(await t.app.inject({ url: '/v1/probe/conflict' }), 409, 'PATIENT_EXISTS');
    assert.deepEqual(error.details, [{ field: 'email', message: 'already used by patient p_1' }]);
  });

  test('an unexpected exception is a bare 500 without stack, SQL or driver detail', async () => {
    const response = await t.app.inject({ url: '/v1/probe/crash' });
    const error = assertEnvelope(response, 500, 'INTERNAL_ERROR');
    assert.equal(error.message, 'An unexpected error occurred');
    assert.doesNotMatch(response.body, /secret_table|SELECT|jane\.doe|at .*\.ts|stack/i);
    const logged = t.logs.find((line) => line.requestId === response.headers['x-request-id'] && line.err);
    assert.ok(logged, 'the failure is logged under the request id');
    assert.doesNotMatch(JSON.stringify(logged), /jane\.doe/, 'pg detail with row values is not logged');
  });
});

describe('database restarts are 503s, not 500s', () => {
  test('a pg client whose connection dropped mid-query (PostgreSQL restarted) counts as the database unavailable', () => {
    assert.ok(isDatabaseUnavailable(new Error('Client has encountered a connection error and is not queryable')));
    assert.ok(isDatabaseUnavailable(new Error('Client was closed and is not queryable')));
    assert.ok(isDatabaseUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })));
    assert.ok(!isDatabaseUnavailable(Object.assign(new Error('duplicate key value'), { code: '23505' })));
  });
});
