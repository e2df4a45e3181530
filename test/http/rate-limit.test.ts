// Rate limits (blueprint 3.1) as a security specification: each test names the abuse it stops.
// Budgets are shrunk through config overrides where exhausting the real one would be slow; the
// blueprint's own numbers are checked through the headers and, for the small ones, exhausted.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync, InjectOptions } from 'fastify';
import { Type } from 'typebox';
import { ConfigError, loadConfig, testConfig, type Config, type RateLimits } from '../../src/config.js';
import { openScratchPglite } from '../helpers/databases.js';
import {
  bucketForPath,
  clientKey,
  consumeLoginAttempt,
  MemoryCounterStore,
} from '../../src/http/rate-limit.js';
import { AppError } from '../../src/http/errors.js';
import { createTestPractice, TEST_PASSWORD } from '../helpers/identity.js';
import { startTestApp as startAnyApp, type TestApp } from '../helpers/app.js';
import { delay, freePort, waitFor } from '../helpers/process.js';

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

const REDIS_URL = process.env.REDIS_URL;
const BLUEPRINT = testConfig().rateLimits;

/** A fresh client address per test: counters in the shared test Redis never collide across runs. */
function randomIp(): string {
  const bytes = randomBytes(3);
  return `10.${bytes[0]}.${bytes[1]}.${bytes[2]}`;
}

/** The shared helper switches limits off for other test files; here they are the subject. */
const startTestApp: typeof startAnyApp = (database, overrides = {}, options = {}) =>
  startAnyApp(database, { rateLimitEnabled: true, ...overrides }, options);

function withRules(overrides: Partial<RateLimits>): Partial<Config> {
  return { rateLimits: { ...BLUEPRINT, ...overrides } };
}

function assertRateLimited(response: Response) {
  assert.equal(response.statusCode, 429, response.body);
  const body = response.json() as { error: { code: string; message: string; details: Array<{ field: string; message: string }>; requestId: string } };
  assert.equal(body.error.code, 'RATE_LIMITED');
  assert.match(body.error.message, /try again later/);
  assert.ok(body.error.details.some((d) => d.field === 'retryAfter' && /Retry after \d+ seconds/.test(d.message)));
  assert.match(String(response.headers['retry-after']), /^\d+$/);
  assert.ok(Number(response.headers['retry-after']) >= 1);
  assert.equal(body.error.requestId, response.headers['x-request-id']);
  return body.error;
}

async function hit(app: FastifyInstance, times: number, request: InjectOptions): Promise<Response[]> {
  const responses: Response[] = [];
  for (let i = 0; i < times; i++) responses.push(await app.inject(request));
  return responses;
}

// A stand-in for the login handler's use of the per-account limit, so its semantics are pinned
// here independently of the auth routes (which have their own tests).
const probeRoutes: FastifyPluginAsync = async (app) => {
  app.post(
    '/v1/probe/login',
    {
      config: { public: true, rateLimit: { name: 'login' } },
      schema: { body: Type.Object({ email: Type.String(), succeed: Type.Optional(Type.Boolean()) }) },
    },
    async (request) => {
      const { email, succeed } = request.body as { email: string; succeed?: boolean };
      await consumeLoginAttempt(request, email);
      if (!succeed) throw new AppError('INVALID_CREDENTIALS', 401, 'Invalid email or password');
      return { ok: true };
    },
  );
  app.get('/v1/probe/open', { config: { public: true } }, async () => ({ ok: true }));
};

const db = await openScratchPglite();
after(() => db.close());

describe('rate-limit units', () => {
  test('sub-paths and versions share their endpoint budget; everything else is the overall budget', () => {
    assert.equal(bucketForPath('/v1/auth/login'), 'login');
    assert.equal(bucketForPath('/v1/auth/login/mfa'), 'login');
    assert.equal(bucketForPath('/v1/auth/login?x=1'), 'login');
    assert.equal(bucketForPath('/v1/auth/logout'), 'global');
    assert.equal(bucketForPath('/v1/auth/loginx'), 'global');
    assert.equal(bucketForPath('/v1/ai/reconcile'), 'reconcile');
    assert.equal(bucketForPath('/v1/ai/reconcile/jobs/:id'), 'reconcile');
    assert.equal(bucketForPath('/v1/patients'), 'patients');
    assert.equal(bucketForPath('/v1/patients/:id'), 'patients');
    assert.equal(bucketForPath('/v1/patients/import'), 'patients');
    assert.equal(bucketForPath('/v2/patients/:id'), 'patients');
    assert.equal(bucketForPath('/v1/patientsx'), 'global');
    assert.equal(bucketForPath('/v1/appointments/:id/cancel'), 'appointments');
    assert.equal(bucketForPath('/v1/services'), 'global');
    assert.equal(bucketForPath('/patients'), 'global');
    assert.equal(bucketForPath('/docs/'), 'global');
  });

  test('a client cannot multiply its budget by rotating addresses inside its IPv6 /64', () => {
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
  });

  test('in-process counters are fixed windows, checked and counted in one step, and bounded', () => {
    let now = 1_000_000;
    const store = new MemoryCounterStore(() => now, 3);
    assert.deepEqual(store.hitSync('a', 1000), { count: 1, resetMs: 1000 });
    now += 400;
    assert.deepEqual(store.hitSync('a', 1000), { count: 2, resetMs: 600 });
    now += 600;
    assert.deepEqual(store.hitSync('a', 1000), { count: 1, resetMs: 1000 }, 'a new window starts from zero');
    store.hitSync('b', 5000);
    store.hitSync('c', 5000);
    store.hitSync('d', 5000); // over maxKeys: the oldest counter goes
    assert.equal(store.size, 3);
    now += 1000;
    assert.equal(store.sweep(), 3, 'a expired, d added');
  });
});

describe('blueprint 3.1 budgets', async () => {
  const t: TestApp = await startTestApp(db, {}, { plugins: [probeRoutes] });
  const app = t.app;

  test('the defaults are the blueprint: 100/15 min overall, login 5/15 min, reconcile 10/h, patients 1000/15 min, appointments 500/15 min', async () => {
    assert.deepEqual(BLUEPRINT, {
      global: { max: 100, windowMs: 900_000 },
      login: { max: 5, windowMs: 900_000 },
      loginAccount: { max: 5, windowMs: 900_000 },
      reconcile: { max: 10, windowMs: 3_600_000 },
      patients: { max: 1000, windowMs: 900_000 },
      appointments: { max: 500, windowMs: 900_000 },
    });
    const expectations: Array<[string, string, number, number]> = [
      ['GET', '/versions', 100, 900],
      ['POST', '/v1/auth/login', 5, 900],
      ['POST', '/v1/ai/reconcile', 10, 3600],
      ['GET', '/v1/patients', 1000, 900],
      ['GET', '/v1/patients/00000000-0000-0000-0000-000000000000', 1000, 900],
      ['GET', '/v1/appointments', 500, 900],
    ];
    for (const [method, url, max, windowSeconds] of expectations) {
      const response = await app.inject({ method: method as 'GET', url, remoteAddress: randomIp(), payload: method === 'POST' ? {} : undefined });
      assert.equal(response.headers['ratelimit-limit'], String(max), url);
      assert.equal(response.headers['ratelimit-remaining'], String(max - 1), url);
      assert.equal(response.headers['ratelimit-reset'], String(windowSeconds), url);
      assert.match(String(response.headers['ratelimit-policy']), new RegExp(`^"\\w+";q=${max};w=${windowSeconds}$`), url);
      assert.match(String(response.headers.ratelimit), new RegExp(`^"\\w+";r=${max - 1};t=${windowSeconds}$`), url);
      assert.equal(
        Object.keys(response.headers).filter((name) => name.startsWith('x-ratelimit')).length,
        0,
        'no legacy X-RateLimit-* headers',
      );
    }
  });

  test('the 101st request in 15 minutes from one IP is refused with 429, the envelope and Retry-After', async () => {
    const remoteAddress = randomIp();
    const allowed = await hit(app, 100, { url: '/versions', remoteAddress });
    assert.ok(allowed.every((r) => r.statusCode === 200));
    assert.equal(allowed[99]!.headers['ratelimit-remaining'], '0');
    const refused = await app.inject({ url: '/versions', remoteAddress });
    const error = assertRateLimited(refused);
    assert.equal(error.message, 'Too many requests from this IP, please try again later.');
    assert.ok(error.details.some((d) => d.field === 'limit' && d.message === '100 requests per 15 minutes'));
    assert.ok(Number(refused.headers['retry-after']) <= 900);
    // Unknown paths and other methods spend the same budget: scanning is not free.
    assertRateLimited(await app.inject({ url: '/no/such/path', remoteAddress }));
    assertRateLimited(await app.inject({ method: 'DELETE', url: '/versions', remoteAddress }));
  });

  test('password guessing from one IP stops after 5 login attempts in 15 minutes', async () => {
    const remoteAddress = randomIp();
    for (let i = 0; i < 5; i++) {
      const email = `nobody-${i}-${randomBytes(3).toString('hex')}@example.test`;
      const response = await app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress, payload: { email, password: 'guess-guess-guess' } });
      assert.notEqual(response.statusCode, 429, response.body);
    }
    const refused = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      remoteAddress,
      payload: { email: 'another@example.test', password: 'guess-guess-guess' },
    });
    assertRateLimited(refused);
    assert.equal(refused.headers['ratelimit-limit'], '5');
  });

  test('login guessing from rotating IPs is stopped per account', async () => {
    const email = `victim-${randomBytes(3).toString('hex')}@example.test`;
    const variants = [email, email.toUpperCase(), ` ${email} `, email, email];
    for (const variant of variants) {
      const response = await app.inject({ method: 'POST', url: '/v1/probe/login', remoteAddress: randomIp(), payload: { email: variant } });
      assert.equal(response.statusCode, 401, response.body);
    }
    const refused = await app.inject({ method: 'POST', url: '/v1/probe/login', remoteAddress: randomIp(), payload: { email } });
    const error = assertRateLimited(refused);
    assert.equal(error.message, 'Too many login attempts for this account, please try again later.');
    // Another account is not affected by the attack on this one.
    const other = await app.inject({
      method: 'POST',
      url: '/v1/probe/login',
      remoteAddress: randomIp(),
      payload: { email: `bystander-${randomBytes(3).toString('hex')}@example.test` },
    });
    assert.equal(other.statusCode, 401);
  });

  test('the real login route applies the per-account limit before checking the password', async () => {
    const email = `victim-${randomBytes(3).toString('hex')}@example.test`;
    const attempt = () =>
      app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: randomIp(), payload: { email, password: 'guess-guess-guess' } });
    for (let i = 0; i < 5; i++) assert.notEqual((await attempt()).statusCode, 429);
    const refused = await attempt();
    const error = assertRateLimited(refused);
    assert.match(error.message, /this account/);
    // The headers describe the budget that refused it, not the (fresh) per-IP one.
    assert.match(String(refused.headers['ratelimit-policy']), /^"loginAccount";q=5;/);
    assert.equal(refused.headers['ratelimit-remaining'], '0');
    assert.equal(refused.headers['ratelimit-reset'], refused.headers['retry-after']);
  });

  test('a successful login gives the account owner a fresh budget', async () => {
    const email = `owner-${randomBytes(3).toString('hex')}@example.test`;
    const attempt = (succeed: boolean) =>
      app.inject({ method: 'POST', url: '/v1/probe/login', remoteAddress: randomIp(), payload: { email, succeed } });
    for (let i = 0; i < 4; i++) assert.equal((await attempt(false)).statusCode, 401);
    assert.equal((await attempt(true)).statusCode, 200);
    for (let i = 0; i < 5; i++) assert.equal((await attempt(false)).statusCode, 401);
    assertRateLimited(await attempt(false));
  });

  test('the real login route: a successful login resets the account budget, guessing still runs out', async () => {
    const practice = await createTestPractice(app, 'Rate Limit Spa');
    const { email } = practice.users.STAFF;
    const login = (password: string) =>
      app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: randomIp(), payload: { email, password } });
    for (let i = 0; i < 2; i++) assert.equal((await login('wrong-password-1')).statusCode, 401);
    assert.equal((await login(TEST_PASSWORD)).statusCode, 200);
    for (let i = 0; i < 5; i++) assert.equal((await login('wrong-password-1')).statusCode, 401);
    assertRateLimited(await login(TEST_PASSWORD));
  });

  test('/health and /health/ready are never limited, even for a client whose budget is spent', async () => {
    const remoteAddress = randomIp();
    await hit(app, 101, { url: '/versions', remoteAddress });
    for (const url of ['/health', '/health/ready']) {
      const responses = await hit(app, 120, { url, remoteAddress });
      assert.ok(responses.every((r) => r.statusCode === 200), url);
      assert.equal(responses[0]!.headers['ratelimit-limit'], undefined, `${url} carries no rate-limit headers`);
    }
  });

  test('hitting a limit is audited once per window, not once per refused request', async () => {
    const remoteAddress = randomIp();
    await hit(app, 104, { url: '/versions', remoteAddress });
    const rows = await waitFor('the audit event', async () => {
      const { rows } = await db.query<{ actor_type: string; practice_id: string | null; outcome: string; details: Record<string, unknown> }>(
        `SELECT actor_type, practice_id, outcome, details FROM audit_events WHERE action = 'rate_limit.exceeded' AND ip = $1`,
        [remoteAddress],
      );
      return rows.length > 0 ? rows : null;
    });
    await delay(100);
    const { rows: again } = await db.query(`SELECT 1 FROM audit_events WHERE action = 'rate_limit.exceeded' AND ip = $1`, [remoteAddress]);
    assert.equal(again.length, 1);
    assert.equal(rows[0]!.actor_type, 'anonymous');
    assert.equal(rows[0]!.practice_id, null);
    assert.equal(rows[0]!.outcome, 'denied');
    assert.equal(rows[0]!.details.limit, 'global');
    assert.equal(rows[0]!.details.scope, 'ip');
  });

  test('the per-account limit is audited too, naming the account', async () => {
    const email = `audited-${randomBytes(3).toString('hex')}@example.test`;
    for (let i = 0; i < 7; i++) {
      await app.inject({ method: 'POST', url: '/v1/probe/login', remoteAddress: randomIp(), payload: { email } });
    }
    const rows = await waitFor('the audit event', async () => {
      const { rows } = await db.query<{ details: Record<string, unknown> }>(
        `SELECT details FROM audit_events WHERE action = 'rate_limit.exceeded' AND details->>'account' = $1`,
        [email],
      );
      return rows.length > 0 ? rows : null;
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.details.scope, 'account');
    assert.equal(rows[0]!.details.limit, 'loginAccount');
  });
});

describe('budgets and their boundaries', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const t = await startTestApp(
    db,
    withRules({ global: { max: 3, windowMs: 60_000 }, patients: { max: 5, windowMs: 60_000 } }),
    { plugins: [probeRoutes], now: () => now },
  );
  const app = t.app;

  test("an endpoint's own budget replaces the overall one, in both directions", async () => {
    const remoteAddress = randomIp();
    await hit(app, 3, { url: '/versions', remoteAddress });
    assertRateLimited(await app.inject({ url: '/versions', remoteAddress }));
    const patients = await hit(app, 5, { url: '/v1/patients', remoteAddress });
    assert.ok(patients.every((r) => r.statusCode !== 429), 'the overall budget being spent does not block /patients');
    assert.equal(patients[4]!.headers['ratelimit-remaining'], '0');
    assertRateLimited(await app.inject({ url: '/v1/patients', remoteAddress }));
  });

  test('a client cannot escape an endpoint budget through sub-paths, other versions or unknown ids', async () => {
    const remoteAddress = randomIp();
    const urls = ['/v1/patients', '/v1/patients/import', '/v2/patients', '/v1/patients/abc', '/v1/patients/abc/notes'];
    const responses = [];
    for (const url of urls) responses.push(await app.inject({ url, remoteAddress }));
    assert.deepEqual(
      responses.map((r) => r.headers['ratelimit-remaining']),
      ['4', '3', '2', '1', '0'],
    );
    assertRateLimited(await app.inject({ url: '/v1/patients/xyz', remoteAddress }));
    // ...while the overall budget is untouched.
    assert.equal((await app.inject({ url: '/versions', remoteAddress })).headers['ratelimit-remaining'], '2');
  });

  test('a refused client is refused before authentication (no token check, no API-key lookup)', async () => {
    const remoteAddress = randomIp();
    await hit(app, 5, { url: '/v1/patients', remoteAddress });
    const response = await app.inject({
      url: '/v1/patients',
      remoteAddress,
      headers: { 'x-api-key': `msk_${'a'.repeat(40)}`, authorization: '' },
    });
    assertRateLimited(response);
  });

  test('a client cannot reset its budget with X-Forwarded-For when no proxy is trusted', async () => {
    const remoteAddress = randomIp();
    const responses = [];
    for (let i = 0; i < 4; i++) {
      responses.push(
        await app.inject({ url: '/versions', remoteAddress, headers: { 'x-forwarded-for': randomIp(), 'x-real-ip': randomIp(), forwarded: `for=${randomIp()}` } }),
      );
    }
    assert.deepEqual(responses.map((r) => r.statusCode), [200, 200, 200, 429]);
  });

  test('the budget comes back when the window ends', async () => {
    const remoteAddress = randomIp();
    await hit(app, 3, { url: '/versions', remoteAddress });
    const refused = assertRateLimited(await app.inject({ url: '/versions', remoteAddress }));
    assert.ok(refused);
    now += 59_000;
    const stillRefused = await app.inject({ url: '/versions', remoteAddress });
    assert.equal(stillRefused.statusCode, 429);
    assert.equal(stillRefused.headers['retry-after'], '1');
    now += 1_000;
    const fresh = await app.inject({ url: '/versions', remoteAddress });
    assert.equal(fresh.statusCode, 200);
    assert.equal(fresh.headers['ratelimit-remaining'], '2');
    assert.equal(fresh.headers['ratelimit-reset'], '60');
  });
});

describe('client addresses behind a proxy', async () => {
  const t = await startTestApp(db, { ...withRules({ global: { max: 2, windowMs: 60_000 } }), trustProxy: '127.0.0.1' });
  const app = t.app;

  test('X-Forwarded-For from a trusted proxy names the client, so clients behind one proxy get their own budgets', async () => {
    const [a, b] = [randomIp(), randomIp()];
    const viaProxy = (client: string) => app.inject({ url: '/versions', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': client } });
    assert.equal((await viaProxy(a)).statusCode, 200);
    assert.equal((await viaProxy(a)).statusCode, 200);
    assert.equal((await viaProxy(a)).statusCode, 429);
    assert.equal((await viaProxy(b)).statusCode, 200, 'another client behind the same proxy is unaffected');
  });

  test('a client cannot prepend addresses to the proxy-appended X-Forwarded-For to reset its budget', async () => {
    const client = randomIp();
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const response = await app.inject({ url: '/versions', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': `${randomIp()}, ${client}` } });
      statuses.push(response.statusCode);
    }
    assert.deepEqual(statuses, [200, 200, 429]);
  });

  test('X-Forwarded-For from an address that is not a trusted proxy is ignored', async () => {
    const remoteAddress = randomIp();
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await app.inject({ url: '/versions', remoteAddress, headers: { 'x-forwarded-for': randomIp() } })).statusCode);
    }
    assert.deepEqual(statuses, [200, 200, 429]);
  });
});

describe('configuration', async () => {
  test('every limit and window comes from the environment; defaults are the blueprint', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      RATE_LIMIT_MAX: '7',
      RATE_LIMIT_WINDOW_MS: '60000',
      RATE_LIMIT_LOGIN_MAX: '3',
      RATE_LIMIT_LOGIN_ACCOUNT_WINDOW_MS: '120000',
      RATE_LIMIT_RECONCILE_MAX: '2',
      RATE_LIMIT_PATIENTS_WINDOW_MS: '1000',
      RATE_LIMIT_APPOINTMENTS_MAX: '50',
    });
    assert.deepEqual(config.rateLimits, {
      global: { max: 7, windowMs: 60_000 },
      login: { max: 3, windowMs: 900_000 },
      loginAccount: { max: 5, windowMs: 120_000 },
      reconcile: { max: 2, windowMs: 3_600_000 },
      patients: { max: 1000, windowMs: 1000 },
      appointments: { max: 50, windowMs: 900_000 },
    });
    assert.equal(loadConfig({ NODE_ENV: 'test', RATE_LIMIT_ENABLED: 'false' }).rateLimitEnabled, false);
  });

  test('a bad limit stops the start with a message naming the variable', () => {
    for (const [name, value] of [
      ['RATE_LIMIT_LOGIN_MAX', '0'],
      ['RATE_LIMIT_PATIENTS_MAX', 'lots'],
      ['RATE_LIMIT_WINDOW_MS', '10'],
      ['RATE_LIMIT_ENABLED', 'maybe'],
    ] as const) {
      assert.throws(
        () => loadConfig({ NODE_ENV: 'test', [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.variable === name,
        name,
      );
    }
  });

  test('RATE_LIMIT_ENABLED=false switches every limit off (load tests, local scripts)', async () => {
    const t = await startTestApp(db, { rateLimitEnabled: false, ...withRules({ global: { max: 1, windowMs: 60_000 } }) }, { plugins: [probeRoutes] });
    const remoteAddress = randomIp();
    const responses = await hit(t.app, 5, { url: '/versions', remoteAddress });
    assert.ok(responses.every((r) => r.statusCode === 200));
    assert.equal(responses[0]!.headers['ratelimit-limit'], undefined);
    const logins = await hit(t.app, 7, { method: 'POST', url: '/v1/probe/login', remoteAddress, payload: { email: 'x@example.test' } });
    assert.ok(logins.every((r) => r.statusCode === 401));
  });
});

describe('shared counters in Redis', { skip: REDIS_URL ? false : 'REDIS_URL not set' }, async () => {
  if (!REDIS_URL) return;
  const rules = withRules({ global: { max: 10, windowMs: 60_000 } });
  const a = await startTestApp(db, { ...rules, redisUrl: REDIS_URL });
  const b = await startTestApp(db, { ...rules, redisUrl: REDIS_URL });

  test('two instances on one Redis give one budget, not two', async () => {
    const remoteAddress = randomIp();
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const app = i % 2 === 0 ? a.app : b.app;
      statuses.push((await app.inject({ url: '/versions', remoteAddress })).statusCode);
    }
    assert.deepEqual(statuses, [...Array(10).fill(200), 429, 429]);
  });

  test('a burst of concurrent requests across instances gets exactly the budget (atomic counting)', async () => {
    const remoteAddress = randomIp();
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a.app : b.app).inject({ url: '/versions', remoteAddress })),
    );
    assert.equal(responses.filter((r) => r.statusCode === 200).length, 10);
    assert.equal(responses.filter((r) => r.statusCode === 429).length, 30);
  });

  test('the per-account login budget is shared by the instances too', async () => {
    const email = `shared-${randomBytes(3).toString('hex')}@example.test`;
    const login = (app: FastifyInstance) =>
      app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: randomIp(), payload: { email, password: 'guess-guess-guess' } });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await login(i % 2 === 0 ? a.app : b.app)).statusCode);
    assert.equal(statuses.filter((s) => s === 429).length, 1, String(statuses));
    assert.equal(statuses[5], 429);
  });

  test('readiness reports the limiter healthy while Redis answers', async () => {
    const ready = await a.app.inject({ url: '/health/ready' });
    assert.deepEqual((ready.json() as { checks: Record<string, unknown> }).checks.rateLimits, { ok: true });
  });
});

describe('Redis failure', { skip: REDIS_URL ? false : 'REDIS_URL not set' }, async () => {
  if (!REDIS_URL) return;

  test('with Redis unreachable from the start the API keeps serving, limits still apply per instance, readiness says degraded', async () => {
    const port = await freePort(); // nothing listens there
    const t = await startTestApp(db, { ...withRules({ global: { max: 3, windowMs: 60_000 } }), redisUrl: `redis://127.0.0.1:${port}/0` });
    const remoteAddress = randomIp();
    const responses = await hit(t.app, 4, { url: '/versions', remoteAddress });
    assert.deepEqual(responses.map((r) => r.statusCode), [200, 200, 200, 429]);
    assert.equal(responses[0]!.headers['ratelimit-limit'], '3');
    const ready = await t.app.inject({ url: '/health/ready' });
    assert.equal(ready.statusCode, 200, 'degraded, not down');
    assert.deepEqual((ready.json() as { checks: Record<string, unknown> }).checks.rateLimits, {
      ok: true,
      degraded: true,
      detail: 'Redis unreachable: counting per instance',
    });
    const loud = t.logs.filter((line) => String(line.msg).startsWith('RATE LIMITS DEGRADED'));
    assert.equal(loud.length, 1, 'one loud line per outage, not one per request');
    assert.equal(loud[0]!.level, 50);
  });

  test('when Redis stops and starts again, the API keeps serving and goes back to shared counters by itself', async () => {
    const port = await freePort();
    let server: ChildProcess | null = null;
    const startRedis = async () => {
      server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
      await waitFor('redis-server', async () => {
        const { Redis } = await import('ioredis');
        const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        probe.on('error', () => {});
        try {
          await probe.connect();
          return (await probe.ping()) === 'PONG';
        } finally {
          probe.disconnect();
        }
      });
    };
    const stopRedis = async () => {
      const child = server!;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    };
    after(() => {
      const child = server as ChildProcess | null;
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    await startRedis();
    const rules = { ...withRules({ global: { max: 4, windowMs: 60_000 } }), redisUrl: `redis://127.0.0.1:${port}/0` };
    const a = await startTestApp(db, rules);
    const b = await startTestApp(db, rules);
    const shared = async () => {
      const remoteAddress = randomIp();
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await (i % 2 === 0 ? a.app : b.app).inject({ url: '/versions', remoteAddress })).statusCode);
      return statuses;
    };
    assert.deepEqual(await shared(), [200, 200, 200, 200, 429, 429], 'shared before the outage');

    await stopRedis();
    const during = await shared();
    assert.deepEqual(during, [200, 200, 200, 200, 200, 200], 'each instance counts alone during the outage, and nothing fails');
    const degraded = await a.app.inject({ url: '/health/ready' });
    assert.equal(degraded.statusCode, 200);
    assert.equal((degraded.json() as { checks: Record<string, { degraded?: boolean }> }).checks.rateLimits!.degraded, true);

    await startRedis();
    await waitFor('both instances to reconnect', () => a.app.redis?.status === 'ready' && b.app.redis?.status === 'ready', { timeoutMs: 10_000 });
    assert.deepEqual(await shared(), [200, 200, 200, 200, 429, 429], 'shared again after the outage');
    const ready = await a.app.inject({ url: '/health/ready' });
    assert.deepEqual((ready.json() as { checks: Record<string, unknown> }).checks.rateLimits, { ok: true });
    const lines = a.logs.map((line) => String(line.msg));
    assert.equal(lines.filter((m) => m.startsWith('RATE LIMITS DEGRADED')).length, 1);
    assert.equal(lines.filter((m) => m.startsWith('rate limits: Redis is back')).length, 1);
  });
});
