// v2 (beta) is complete (blueprint 5.2): every /v1 route has a /v2 twin with the same method, path,
// access rule and rate-limit budget, or is on the documented list of exceptions below, so a v2
// client never needs /v1 (and keeps working when v1 is one day retired). The twins are documented
// in /v2/openapi.json, announce v2's own lifecycle dates, and share v1's budgets and engines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import type { RouteEntry } from '../../src/app.js';
import { openScratchPglite } from '../helpers/databases.js';
import { bucketForPath } from '../../src/http/rate-limit.js';
import { WorkerCrashedError } from '../../src/reconcile/pool.js';
import type { ReconcileRunner } from '../../src/reconcile/routes.js';
import { startTestApp } from '../helpers/app.js';
import { createTestPractice } from '../helpers/identity.js';

/**
 * v1 routes that deliberately have no v2 twin, each with its reason. Each one must also be named in
 * docs/migration.md. Empty today: auth, users, api-keys, audit-events, reports and ai/reconcile are
 * served under /v2 too, because tokens, keys and runs are version-independent and a v2 client must
 * not depend on a version that may be retired before it.
 */
const V1_ONLY: Readonly<Record<string, string>> = {};

const db = await openScratchPglite();
after(() => db.close());
const { app } = await startTestApp(db);

const name = (route: { method: string; url: string }) => `${route.method} ${route.url}`;
const v1Routes = app.routeTable.filter((route) => route.url.startsWith('/v1/'));
const v2ByName = new Map(app.routeTable.filter((route) => route.url.startsWith('/v2/')).map((route) => [name(route), route]));
const twinOf = (route: RouteEntry) => v2ByName.get(name({ method: route.method, url: route.url.replace(/^\/v1\//, '/v2/') }));

describe('every v1 route has a v2 twin or a documented reason', () => {
  test('the walk sees the whole v1 surface', () => {
    assert.ok(v1Routes.length >= 40, `only ${v1Routes.length} v1 routes`);
  });

  test('each v1 route: a /v2 twin with the same method and path, or an exception with a reason', () => {
    const missing = v1Routes.filter((route) => twinOf(route) === undefined && V1_ONLY[name(route)] === undefined).map(name);
    assert.deepEqual(missing, [], 'give these a /v2 twin, or list them in V1_ONLY with the reason (and in docs/migration.md)');
  });

  test('a twin declares the same access rule and the same rate-limit budget as its v1 route', () => {
    const problems: string[] = [];
    for (const route of v1Routes) {
      const twin = twinOf(route);
      if (twin === undefined) continue;
      const rule = (entry: RouteEntry) => ({
        permission: entry.config.permission,
        selfService: entry.config.selfService,
        public: entry.config.public,
        rateLimit: entry.config.rateLimit,
        bucket: bucketForPath(entry.url),
      });
      try {
        assert.deepEqual(rule(twin), rule(route));
      } catch {
        problems.push(`${name(twin)} differs from ${name(route)}: ${JSON.stringify(rule(twin))} vs ${JSON.stringify(rule(route))}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('every exception names an existing v1 route that really has no twin, gives a reason, and is in docs/migration.md', () => {
    const guide = readFileSync(new URL('../../docs/migration.md', import.meta.url), 'utf8');
    for (const [route, reason] of Object.entries(V1_ONLY)) {
      const entry = v1Routes.find((r) => name(r) === route);
      assert.ok(entry, `${route} is not a v1 route`);
      assert.equal(twinOf(entry), undefined, `${route} has a twin after all`);
      assert.ok(reason.length > 10, `${route}: give a reason`);
      const [method, url] = route.split(' ');
      assert.ok(guide.includes(`${method} ${url!.replace(/:(\w+)/g, '{$1}')}`), `${route} is not explained in docs/migration.md`);
    }
  });
});

describe('/v2/openapi.json documents everything served under /v2', async () => {
  type Operation = { operationId: string; responses: Record<string, unknown> };
  const documentOf = async (version: string) =>
    (await app.inject({ url: `/${version}/openapi.json` })).json() as { paths: Record<string, Record<string, Operation>> };
  const v1 = await documentOf('v1');
  const v2 = await documentOf('v2');
  const operations = (doc: typeof v1) =>
    Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })));

  test('each v1 operation is in the v2 document, under the same path and operationId', () => {
    const v2Operations = new Map(operations(v2).map(({ key, op }) => [key, op]));
    const missing: string[] = [];
    for (const { key, op } of operations(v1)) {
      const twin = v2Operations.get(key);
      if (twin === undefined) missing.push(key);
      else assert.equal(twin.operationId, op.operationId, key);
    }
    assert.deepEqual(missing, []);
  });

  test('each documented v2 operation is a route the server has, and every v2 route (but HEAD) is documented', () => {
    const documented = new Set(operations(v2).map(({ key }) => key));
    const served = [...v2ByName.values()]
      .filter((route) => route.method !== 'HEAD' && route.url !== '/v2/openapi.json')
      .map((route) => `${route.method} ${route.url.slice(3).replace(/:(\w+)/g, '{$1}')}`);
    assert.deepEqual([...documented].sort(), [...new Set(served)].sort());
  });

  test('the scheduling, administration, auth and reconciliation operations are there', () => {
    for (const key of [
      'POST /auth/login',
      'POST /auth/refresh',
      'GET /services',
      'POST /services',
      'PATCH /services/{serviceId}',
      'POST /appointments',
      'PATCH /appointments/{appointmentId}',
      'GET /reports/appointments',
      'POST /users',
      'POST /api-keys',
      'GET /audit-events',
      'POST /ai/reconcile',
      'GET /ai/reconcile/{runId}',
      'POST /patients',
      'PATCH /patients/{patientId}',
      'DELETE /patients/{patientId}',
      'POST /patients/import',
    ]) {
      assert.ok(operations(v2).some((operation) => operation.key === key), key);
    }
  });
});

describe('the auth and administration twins', async () => {
  const practice = await createTestPractice(app, 'Twin Spa');
  const admin = practice.users.ADMIN;

  test('a token from POST /v2/auth/login works on /v1 and /v2 alike; /v2/auth/refresh rotates it', async () => {
    // The reuse at the end revokes this user's sessions: a user of its own.
    const manager = practice.users.MANAGER;
    const login = await app.inject({ method: 'POST', url: '/v2/auth/login', payload: { email: manager.email, password: manager.password } });
    assert.equal(login.statusCode, 200, login.body);
    const { accessToken, refreshToken } = login.json() as { accessToken: string; refreshToken: string };
    const headers = { authorization: `Bearer ${accessToken}` };
    for (const version of ['v1', 'v2']) {
      const me = await app.inject({ url: `/${version}/auth/me`, headers });
      assert.equal(me.statusCode, 200, `${version}: ${me.body}`);
      assert.equal((me.json() as { email: string }).email, manager.email);
    }
    const refreshed = await app.inject({ method: 'POST', url: '/v2/auth/refresh', payload: { refreshToken } });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    const reused = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } });
    assert.equal(reused.statusCode, 401, 'a refresh token rotated through v2 is spent for v1 too');
  });

  test('users and API keys created under /v2 have a /v2 Location and are the same records under /v1', async () => {
    const user = await app.inject({
      method: 'POST',
      url: '/v2/users',
      headers: admin.headers,
      payload: { email: 'twin.user@example.test', password: 'a long enough passphrase 42', role: 'STAFF', firstName: 'Twin', lastName: 'User' },
    });
    assert.equal(user.statusCode, 201, user.body);
    const userId = (user.json() as { id: string }).id;
    assert.equal(user.headers.location, `/v2/users/${userId}`);
    const [v1User, v2User] = await Promise.all(
      ['v1', 'v2'].map(async (version) => (await app.inject({ url: `/${version}/users/${userId}`, headers: admin.headers })).json()),
    );
    assert.deepEqual(v2User, v1User);

    const key = await app.inject({ method: 'POST', url: '/v2/api-keys', headers: admin.headers, payload: { name: 'POS export', permissions: ['read:services'] } });
    assert.equal(key.statusCode, 201, key.body);
    const created = key.json() as { id: string; key: string };
    assert.equal(key.headers.location, `/v2/api-keys/${created.id}`);
    assert.equal((await app.inject({ url: '/v1/services', headers: { 'x-api-key': created.key } })).statusCode, 200);
    const revoked = await app.inject({ method: 'DELETE', url: `/v1/api-keys/${created.id}`, headers: admin.headers });
    assert.ok(revoked.statusCode < 300, revoked.body);
    assert.equal((await app.inject({ url: '/v2/services', headers: { 'x-api-key': created.key } })).statusCode, 401, 'revoked through v1, refused by v2');
  });

  test('the audit trail is one trail: /v2/audit-events lists what /v1 lists', async () => {
    const list = async (version: string) =>
      (await app.inject({ url: `/${version}/audit-events?action=user.create`, headers: admin.headers })).json() as { data: unknown[] };
    const v1 = await list('v1');
    const v2 = await list('v2');
    assert.ok(v1.data.length > 0);
    assert.deepEqual(v2.data, v1.data);
  });
});

describe('lifecycle headers and budgets apply to the twins', async () => {
  test('v2 dates announce Deprecation and Sunset on every v2 twin and retire them all with 410; v1 and /versions are unaffected', async () => {
    const clock = { now: Date.parse('2027-03-01T12:00:00Z') };
    const dated = await startTestApp(
      db,
      { versionDates: { v1: { deprecationDate: null, sunsetDate: null }, v2: { deprecationDate: '2027-01-01', sunsetDate: '2027-06-30' } } },
      { now: () => clock.now },
    );
    const practice = await createTestPractice(dated.app, 'Dated Spa');
    const headers = practice.users.ADMIN.headers;
    for (const url of ['/services', '/appointments', '/reports/appointments?startDate=2027-01-01&endDate=2027-01-31', '/auth/me', '/users', '/patients']) {
      const v2 = await dated.app.inject({ url: `/v2${url}`, headers });
      assert.equal(v2.headers.deprecation, `@${Date.parse('2027-01-01T00:00:00Z') / 1000}`, url);
      assert.equal(v2.headers.sunset, 'Wed, 30 Jun 2027 00:00:00 GMT', url);
      const v1 = await dated.app.inject({ url: `/v1${url}`, headers });
      assert.equal(v1.headers.deprecation, undefined, url);
      assert.equal(v1.statusCode, v2.statusCode, url);
    }
    clock.now = Date.parse('2027-06-30T00:00:00Z');
    for (const url of ['/v2/services', '/v2/appointments', '/v2/auth/login']) {
      const gone = await dated.app.inject({ method: url.endsWith('login') ? 'POST' : 'GET', url, headers, payload: url.endsWith('login') ? {} : undefined });
      assert.equal(gone.statusCode, 410, url);
    }
    assert.equal((await dated.app.inject({ url: '/v1/services', headers })).statusCode, 200);
    const versions = await dated.app.inject({ url: '/versions' });
    assert.equal(versions.statusCode, 200);
    assert.equal((versions.json() as { data: Array<{ version: string; status: string }> }).data.find((v) => v.version === 'v2')!.status, 'deprecated');
  });

  test('login attempts spent on /v1 are not renewed on /v2: one per-IP login budget for both', async () => {
    const limited = await startTestApp(db, { rateLimitEnabled: true, rateLimits: { ...app.config.rateLimits, login: { max: 2, windowMs: 60_000 } } });
    const attempt = (version: string) =>
      limited.app.inject({ method: 'POST', url: `/${version}/auth/login`, payload: { email: 'nobody@example.test', password: 'not the password' }, remoteAddress: '198.51.100.7' });
    assert.equal((await attempt('v1')).statusCode, 401);
    assert.equal((await attempt('v2')).statusCode, 401);
    const third = await attempt('v2');
    assert.equal(third.statusCode, 429);
    assert.ok(third.headers['retry-after']);
    assert.equal((await attempt('v1')).statusCode, 429);
  });

  test('one reconciliation engine and one circuit breaker behind /v1 and /v2', async () => {
    const failing: ReconcileRunner = {
      run: async () => {
        throw new WorkerCrashedError('injected');
      },
      assertCapacity() {},
      stats: () => ({ size: 1, workers: 1, busy: 0, queued: 0, queueLimit: 1, completed: 0, failed: 0, timedOut: 0, crashed: 0, rejected: 0 }),
      close: async () => {},
    };
    const shared = await startTestApp(db, { reconcile: { ...app.config.reconcile, breakerFailureThreshold: 2 } }, { reconcile: { pool: failing } });
    const practice = await createTestPractice(shared.app, 'Breaker Spa');
    const post = (version: string) =>
      shared.app.inject({ method: 'POST', url: `/${version}/ai/reconcile`, headers: practice.users.STAFF.headers, payload: { data: [{ firstName: 'Ann', lastName: 'Lee' }] } });
    assert.equal((await post('v1')).headers['retry-after'], undefined, 'first failure: still closed');
    const second = await post('v2');
    assert.equal(second.statusCode, 503);
    assert.ok(second.headers['retry-after'], 'the second failure, through v2, opened the circuit v1 counted into');
    const v1 = await post('v1');
    assert.equal(v1.statusCode, 503);
    assert.ok(v1.headers['retry-after'], 'and v1 sees it open');
  });
});
