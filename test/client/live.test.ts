// The client SDK (packages/client) against a live server: the app listens on a free port and the
// client speaks real HTTP to it, on every database target. Covers what an integrator does first
// (log in, list patients, create one, book an appointment safely) and the transport's rules:
// refresh on 401 (once, shared), API keys, and the bounded retry of a real 429.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { createClient, type Tokens } from '../../packages/client/src/index.js';
import { signAccessToken } from '../../src/auth/jwt.js';
import { permissionsForRole } from '../../src/auth/rbac.js';
import { totp } from '../../src/auth/totp.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestUser } from '../helpers/identity.js';
import { apiError } from '../helpers/sdk.js';

/** A fetch that records what the client sent and what came back, then really sends it. */
function recordingFetch() {
  const sent: Array<{ method: string; path: string; status: number }> = [];
  const fetch = async (request: Request) => {
    const response = await globalThis.fetch(request);
    sent.push({ method: request.method, path: new URL(request.url).pathname, status: response.status });
    return response;
  };
  return { sent, fetch };
}

const credentials = (user: TestUser) => ({ email: user.email, password: user.password });

for (const target of databaseTargets()) {
  describe(`client SDK against a live server on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
    const practice = await createTestPractice(app, 'SDK Spa');
    const { ADMIN: admin, PRACTITIONER: practitioner, MANAGER: manager } = practice.users;
    const adminApi = createClient({ baseUrl, version: 'v1', auth: credentials(admin) });

    /** A pair from a real login, and an access token for the same user that expired an hour ago. */
    async function expiredSession(user: TestUser): Promise<{ tokens: Tokens; expired: string }> {
      const tokens = await createClient({ baseUrl, version: 'v1', auth: credentials(user) }).login();
      const { token: expired } = signAccessToken(
        { sub: user.id, email: user.email, role: user.role, practiceId: practice.id, permissions: permissionsForRole(user.role) },
        {
          secret: app.auth.signingSecret,
          kid: app.auth.signingKid,
          issuer: app.config.jwtIssuer,
          audience: app.config.jwtAudience,
          ttlSeconds: 60,
          now: Date.now() - 3_600_000,
        },
      );
      return { tokens, expired };
    }

    test('logs in, lists patients, creates a patient and books an appointment; the same Idempotency-Key replays the same appointment', async () => {
      const { data: service } = await adminApi.post('/services', { body: { name: 'HydraFacial', durationMinutes: 60, priceCents: 19900 } });

      const saved: Tokens[] = [];
      // ADMIN: the one role that writes patients (front-desk STAFF books, but doesn't register).
      const api = createClient({ baseUrl, version: 'v1', auth: credentials(admin), onTokens: (tokens) => void saved.push(tokens) });
      const before = await api.get('/patients', { params: { query: { limit: 5 } } });
      assert.equal(saved.length, 1, 'the first request logged in and handed the pair to onTokens');
      assert.equal(api.tokens?.accessToken, saved[0]!.accessToken);
      assert.equal(before.data.pagination.limit, 5);

      const created = await api.post('/patients', { body: { firstName: 'Zoë', lastName: "O'Brien", email: `zoe.${randomUUID()}@example.test` } });
      assert.equal(created.response.status, 201);
      assert.equal(created.response.headers.get('location'), `/v1/patients/${created.data.id}`);
      const after = await api.get('/patients', { params: { query: { q: "O'Brien" } } });
      assert.deepEqual(after.data.data.map((patient) => patient.id), [created.data.id]);

      const booking = {
        patientId: created.data.id,
        practitionerId: practitioner.id,
        serviceId: service.id,
        startTime: '2027-06-01T10:00:00-04:00',
      };
      const key = randomUUID();
      const first = await api.post('/appointments', { body: booking, idempotencyKey: key });
      assert.equal(first.response.status, 201);
      assert.equal(first.data.endTime, '2027-06-01T15:00:00.000Z', 'the service duration filled in the end');
      const replay = await api.post('/appointments', { body: booking, idempotencyKey: key });
      assert.equal(replay.data.id, first.data.id, 'a retry with the same key is the same appointment, not a second one');
      assert.equal(replay.response.headers.get('idempotent-replayed'), 'true');

      // A new key is a new booking: the slot is taken, and the error envelope arrives typed.
      const clash = await apiError(api.post('/appointments', { body: booking, idempotencyKey: true }));
      assert.equal(clash.status, 409);
      assert.equal(clash.code, 'TIME_SLOT_CONFLICT');
      assert.match(clash.requestId ?? '', /./);
      assert.match(clash.correlationId ?? '', /./);
      assert.equal(saved.length, 1, 'one login for the whole conversation');
    });

    test('logs in with a TOTP code when the account has MFA, and says MFA_REQUIRED without one', async () => {
      const api = createClient({ baseUrl, version: 'v1', auth: credentials(practitioner) });
      const { data: setup } = await api.post('/auth/mfa/setup', { body: { password: practitioner.password } });
      await api.post('/auth/mfa/verify', { body: { token: totp(setup.secret) } });

      const withoutCode = await apiError(createClient({ baseUrl, version: 'v1', auth: credentials(practitioner) }).get('/auth/me'));
      assert.equal(withoutCode.code, 'MFA_REQUIRED');

      // The enrolment used the current time step, which can't be replayed: the next one is in the window.
      const withCode = createClient({
        baseUrl,
        version: 'v1',
        auth: { ...credentials(practitioner), mfaCode: () => totp(setup.secret, { time: Date.now() + 30_000 }) },
      });
      const { data: me } = await withCode.get('/auth/me');
      assert.equal(me.id, practitioner.id);
      assert.equal(me.mfaEnabled, true);
    });

    test('an expired access token is refreshed once for concurrent requests, and the rotated pair goes to onTokens', async () => {
      const { tokens, expired } = await expiredSession(manager);
      const recorder = recordingFetch();
      const saved: Tokens[] = [];
      const api = createClient({
        baseUrl,
        version: 'v1',
        auth: { accessToken: expired, refreshToken: tokens.refreshToken },
        onTokens: (pair) => void saved.push(pair),
        fetch: recorder.fetch,
      });
      const answers = await Promise.all(Array.from({ length: 5 }, () => api.get('/patients', { params: { query: { limit: 1 } } })));
      assert.equal(answers.length, 5);
      const refreshes = recorder.sent.filter((sent) => sent.path === '/v1/auth/refresh');
      // Refresh tokens are single use and a reused one ends the session: one refresh per refusal would fail here.
      assert.deepEqual(refreshes.map((sent) => sent.status), [200], 'five 401s, one refresh');
      assert.equal(recorder.sent.filter((sent) => sent.path === '/v1/patients' && sent.status === 401).length, 5);
      assert.equal(saved.length, 1);
      assert.notEqual(saved[0]!.refreshToken, tokens.refreshToken, 'the refresh token rotated');
      assert.equal(api.tokens?.accessToken, saved[0]!.accessToken);
    });

    test('a stored refresh token alone is exchanged for a pair before the first request', async () => {
      const { tokens } = await expiredSession(manager);
      const recorder = recordingFetch();
      const saved: Tokens[] = [];
      const api = createClient({ baseUrl, version: 'v1', auth: { refreshToken: tokens.refreshToken }, onTokens: (pair) => void saved.push(pair), fetch: recorder.fetch });
      const { data } = await api.get('/auth/me');
      assert.equal(data.id, manager.id);
      assert.deepEqual(recorder.sent.map((sent) => `${sent.path} ${sent.status}`), ['/v1/auth/refresh 200', '/v1/auth/me 200']);
      assert.equal(saved.length, 1);
    });

    test('logout ends the session on the server: its refresh token is refused afterwards', async () => {
      const api = createClient({ baseUrl, version: 'v1', auth: credentials(manager) });
      const { refreshToken } = await api.login();
      await api.logout();
      assert.equal(api.tokens === null, true, 'the pair is forgotten');
      const reuse = await apiError(createClient({ baseUrl, version: 'v1', auth: { refreshToken } }).get('/auth/me'));
      assert.equal(reuse.status, 401);
    });

    test('a refused refresh surfaces the server error, and later calls fail with it without sending', async () => {
      const { expired } = await expiredSession(manager);
      const recorder = recordingFetch();
      const api = createClient({
        baseUrl,
        version: 'v1',
        auth: { accessToken: expired, refreshToken: 'rt_not-a-real-refresh-token' },
        fetch: recorder.fetch,
      });
      const error = await apiError(api.get('/patients'));
      assert.equal(error.status, 401);
      assert.equal(error.code, 'INVALID_REFRESH_TOKEN');
      assert.equal(recorder.sent.length, 2, 'the refused request and one refresh, no loop');
      const again = await apiError(api.get('/patients'));
      assert.equal(again.code, 'INVALID_REFRESH_TOKEN');
      assert.equal(recorder.sent.length, 2);
    });

    test('after a refused refresh, a client holding the password logs in again on its next call', async () => {
      const user = (await createTestPractice(app, 'Reuse Spa')).users.MANAGER;
      const api = createClient({ baseUrl, version: 'v1', auth: credentials(user) });
      const first = await api.login();
      // Someone else exchanges this refresh token, then presents it again: the server sees reuse,
      // ends the session and cuts off the user's access tokens.
      const refresh = (refreshToken: string) =>
        fetch(`${baseUrl}/v1/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) });
      assert.equal((await refresh(first.refreshToken)).status, 200);
      assert.equal((await refresh(first.refreshToken)).status, 401);

      const refused = await apiError(api.get('/auth/me')); // the refresh failed: its error reaches the caller
      assert.equal(refused.status, 401);
      assert.equal(api.tokens === null, true, 'the spent pair is forgotten');
      const { data } = await api.get('/auth/me');
      assert.equal(data.id, user.id);
      assert.notEqual(api.tokens?.refreshToken, first.refreshToken);
    });

    test('authenticates with an API key (X-API-Key), within the key\'s permissions', async () => {
      const { data: created } = await adminApi.post('/api-keys', { body: { name: 'POS export', permissions: ['read:patients'] } });
      const keyed = createClient({ baseUrl, version: 'v1', auth: { apiKey: created.key } });
      const { data } = await keyed.get('/patients');
      assert.ok(data.pagination.total >= 1, 'the practice has patients');
      assert.equal(keyed.tokens, null);
      const refused = await apiError(keyed.post('/patients', { body: { firstName: 'No', lastName: 'Permission' } }));
      assert.equal(refused.status, 403);
      assert.equal(refused.code, 'FORBIDDEN');
    });

    test('the v2 client reads and writes patients in the v2 shape', async () => {
      const api = createClient({ baseUrl, version: 'v2', auth: credentials(admin) });
      const { data: patient } = await api.post('/patients', { body: { firstName: 'Mara', lastName: 'Contact', contact: { phone: '+12125550123' } } });
      assert.equal(patient.contact.phone, '+12125550123');
      const { data: read } = await api.get('/patients/{patientId}', { params: { path: { patientId: patient.id } } });
      assert.equal(read.contact.phone, '+12125550123');
    });
  });

  describe(`client SDK retries a real 429 on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Busy Spa');
    const defaults = app.config.rateLimits;
    // Small budgets, so the limiter refuses within a few requests: patients 2 per 3 s, appointments 1 per minute.
    const { app: limited } = await startTestApp(db, {
      rateLimitEnabled: true,
      rateLimits: { ...defaults, patients: { max: 2, windowMs: 3000 }, appointments: { max: 1, windowMs: 60_000 } },
    });
    const baseUrl = await limited.listen({ port: 0, host: '127.0.0.1' });
    const { data: key } = await createClient({ baseUrl: await app.listen({ port: 0, host: '127.0.0.1' }), version: 'v1', auth: credentials(practice.users.ADMIN) })
      .post('/api-keys', { body: { name: 'retry test', permissions: ['read:patients', 'read:appointments'] } });
    const auth = { apiKey: key.key };

    async function exhaust(path: string, budget: number): Promise<void> {
      for (let i = 0; i <= budget; i += 1) {
        const response = await fetch(`${baseUrl}${path}`, { headers: { 'x-api-key': key.key } });
        await response.body?.cancel();
        if (i === budget) assert.equal(response.status, 429, 'the budget is spent');
      }
    }

    test('a 429 is retried after its Retry-After and then succeeds', async () => {
      await exhaust('/v1/patients', 2);
      const recorder = recordingFetch();
      const waits: number[] = [];
      const api = createClient({
        baseUrl,
        version: 'v1',
        auth,
        fetch: recorder.fetch,
        sleep: (ms) => {
          waits.push(ms);
          return new Promise((resolve) => setTimeout(resolve, ms));
        },
      });
      const { data } = await api.get('/patients');
      assert.ok(Array.isArray(data.data), 'a patient list');
      assert.equal(recorder.sent[0]!.status, 429);
      assert.equal(recorder.sent.at(-1)!.status, 200);
      assert.ok(waits.length >= 1 && waits.every((ms) => ms >= 1000 && ms <= 3000), `waited as Retry-After said: ${waits.join(', ')}`);
    });

    test('the retry is bounded: a Retry-After past maxTotalWaitMs is not waited for, and maxAttempts caps the sends', async () => {
      await exhaust('/v1/appointments', 1);
      const recorder = recordingFetch();
      const waits: number[] = [];
      const impatient = createClient({ baseUrl, version: 'v1', auth, fetch: recorder.fetch, retry: { maxTotalWaitMs: 5000 }, sleep: async (ms) => void waits.push(ms) });
      const refused = await apiError(impatient.get('/appointments'));
      assert.equal(refused.status, 429);
      assert.equal(refused.code, 'RATE_LIMITED');
      assert.equal(recorder.sent.length, 1, 'a minute-long Retry-After is past the 5 s budget: given back at once');
      assert.equal(waits.length, 0, 'nothing waited');

      // A caller willing to wait: the sends still stop at maxAttempts (sleep recorded, not slept).
      const stubborn = createClient({ baseUrl, version: 'v1', auth, fetch: recorder.fetch, retry: { maxAttempts: 3, maxTotalWaitMs: 3_600_000 }, sleep: async (ms) => void waits.push(ms) });
      const still = await apiError(stubborn.get('/appointments'));
      assert.equal(still.code, 'RATE_LIMITED');
      assert.equal(recorder.sent.length, 1 + 3);
      assert.equal(waits.length, 2);
      assert.ok(waits.every((ms) => ms > 5000), 'each wait was the Retry-After of the answer');
    });
  });
}
