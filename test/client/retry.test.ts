// The SDK's retry rules (packages/client/src/retry.ts) as pure functions, and the transport's
// handling of a 503 with a scripted fetch: the live tests can provoke a real 429, but a real 503
// at the right moment only with fault injection, and these rules decide whether work runs twice.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError, createClient, DEFAULT_RETRY_POLICY, isSafeToRetry, parseRetryAfter, retryDelay } from '../../packages/client/src/index.js';
import { apiError } from '../helpers/sdk.js';

describe('Retry-After', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');

  test('reads delta seconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
  });

  test('reads an HTTP date, and a date already past is no wait', () => {
    assert.equal(parseRetryAfter('Fri, 04 Dec 2026 12:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Fri, 04 Dec 2026 11:00:00 GMT', now), 0);
  });

  test('absent or unreadable is null (the backoff applies)', () => {
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
  });
});

describe('which answers are retried', () => {
  test('429 always: the limiter refused before any work', () => {
    assert.equal(isSafeToRetry(429, 'POST', false), true);
  });

  test('a 503 to a POST without Idempotency-Key is never sent again (it could book twice)', () => {
    assert.equal(isSafeToRetry(503, 'POST', false), false);
    assert.equal(isSafeToRetry(503, 'PATCH', true), false, 'the server honours keys on POST only');
  });

  test('a 503 to an idempotent method, or to a POST with Idempotency-Key, is', () => {
    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) assert.equal(isSafeToRetry(503, method, false), true, method);
    assert.equal(isSafeToRetry(503, 'post', true), true);
  });

  test('other statuses are not', () => {
    for (const status of [400, 401, 409, 500, 502, 504]) assert.equal(isSafeToRetry(status, 'GET', true), false, String(status));
  });
});

describe('retry bounds', () => {
  const policy = { maxAttempts: 3, maxTotalWaitMs: 5000, baseDelayMs: 200 };
  const refused = { status: 429, method: 'GET', hasIdempotencyKey: false, retryAfter: '2', attempts: 1, waitedMs: 0 };

  test('waits what Retry-After says', () => {
    assert.equal(retryDelay(refused, policy), 2000);
  });

  test('without Retry-After, backs off exponentially', () => {
    assert.equal(retryDelay({ ...refused, retryAfter: null }, policy), 200);
    assert.equal(retryDelay({ ...refused, retryAfter: null, attempts: 2 }, policy), 400);
  });

  test('stops at maxAttempts', () => {
    assert.equal(retryDelay({ ...refused, attempts: 3 }, policy), null);
  });

  test('never waits past maxTotalWaitMs, counting what was already waited', () => {
    assert.equal(retryDelay({ ...refused, retryAfter: '6' }, policy), null);
    assert.equal(retryDelay({ ...refused, attempts: 2, waitedMs: 4000 }, policy), null);
  });

  test('the defaults are small', () => {
    assert.deepEqual(DEFAULT_RETRY_POLICY, { maxAttempts: 3, maxTotalWaitMs: 10_000, baseDelayMs: 250 });
  });
});

describe('the transport on a 503', () => {
  /** Answers each request from the script in turn, recording what was sent. */
  function scripted(...statuses: number[]) {
    const sent: Array<{ method: string; key: string | null; body: string }> = [];
    const fetch = async (request: Request) => {
      sent.push({ method: request.method, key: request.headers.get('idempotency-key'), body: await request.text() });
      const status = statuses[Math.min(sent.length - 1, statuses.length - 1)]!;
      const body = status < 300 ? { id: 'a1' } : { error: { code: 'SERVICE_UNAVAILABLE', message: 'busy', details: [], timestamp: '', requestId: 'req_1', correlationId: 'corr_1' } };
      return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'retry-after': '1' } });
    };
    const client = createClient({ baseUrl: 'http://sdk.invalid', version: 'v1', auth: { apiKey: 'k' }, fetch, sleep: async () => undefined });
    return { sent, client };
  }
  const booking = { patientId: 'p', practitionerId: 'u', serviceId: 's', startTime: '2027-01-01T10:00:00Z' };

  test('a booking without Idempotency-Key is sent once and the 503 reaches the caller', async () => {
    const { sent, client } = scripted(503, 201);
    const error = await apiError(client.post('/appointments', { body: booking }));
    assert.equal(error.code, 'SERVICE_UNAVAILABLE');
    assert.equal(error.requestId, 'req_1');
    assert.equal(sent.length, 1);
  });

  test('a booking with Idempotency-Key is sent again with the same key and the same body', async () => {
    const { sent, client } = scripted(503, 201);
    const { data } = await client.post('/appointments', { body: booking, idempotencyKey: true });
    assert.equal(data.id, 'a1');
    assert.equal(sent.length, 2);
    assert.match(sent[0]!.key ?? '', /^[0-9a-f-]{36}$/, 'a generated UUID');
    assert.equal(sent[1]!.key, sent[0]!.key);
    assert.equal(sent[1]!.body, sent[0]!.body);
    assert.deepEqual(JSON.parse(sent[1]!.body), booking);
  });

  test('a GET is retried up to maxAttempts, then the last 503 is the error', async () => {
    const { sent, client } = scripted(503);
    const error = await apiError(client.get('/patients'));
    assert.equal(error.status, 503);
    assert.equal(sent.length, DEFAULT_RETRY_POLICY.maxAttempts);
  });

  test('a body that is not the envelope still gives an ApiError with the status', () => {
    const error = new ApiError(502, '<html>Bad Gateway</html>');
    assert.equal(error.code, 'HTTP_502');
    assert.equal(error.envelope, null);
  });
});

describe('the typed calls', () => {
  test('the compiler refuses idempotencyKey on an operation that does not declare the header (the server would ignore it)', () => {
    const client = createClient({ baseUrl: 'http://sdk.invalid', version: 'v1', fetch: async () => new Response(null, { status: 204 }) });
    // Checked by the typecheck that npm test runs first; never sent.
    const calls = () => [
      // @ts-expect-error POST /auth/login declares no Idempotency-Key: a retry after a 503 would not be safe
      client.post('/auth/login', { body: { email: 'a@example.test', password: 'long enough' }, idempotencyKey: 'k' }),
      client.post('/appointments', { body: { patientId: 'p', practitionerId: 'u', serviceId: 's', startTime: 't' }, idempotencyKey: 'k' }),
      // @ts-expect-error a path the document does not have
      client.get('/no-such-path'),
    ];
    assert.equal(typeof calls, 'function');
  });
});
