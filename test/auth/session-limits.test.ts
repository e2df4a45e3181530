// Automatic logoff (45 CFR 164.312(a)(2)(iii)): a session left idle, or kept alive past its
// lifetime, can no longer be refreshed. Time is moved with the app's injected clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sessionLimitReached } from '../../src/auth/sessions.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestUser } from '../helpers/identity.js';

const MINUTE = 60_000;

describe('session limits (pure)', () => {
  const limits = { sessionIdleTimeoutSeconds: 900, sessionMaxLifetimeSeconds: 43_200 };
  const at = (ms: number) => new Date(ms);
  test('idle is measured from the last login or refresh, the lifetime from the login', () => {
    const start = 1_800_000_000_000;
    assert.equal(sessionLimitReached({ family_started_at: at(start), issued_at: at(start) }, start + 15 * MINUTE, limits), null, 'exactly 15 minutes is not longer than 15');
    assert.equal(sessionLimitReached({ family_started_at: at(start), issued_at: at(start) }, start + 15 * MINUTE + 1, limits), 'idle');
    const lastRefresh = start + 12 * 60 * MINUTE - 5 * MINUTE;
    assert.equal(sessionLimitReached({ family_started_at: at(start), issued_at: at(lastRefresh) }, start + 12 * 60 * MINUTE, limits), null);
    assert.equal(sessionLimitReached({ family_started_at: at(start), issued_at: at(lastRefresh) }, start + 12 * 60 * MINUTE + 1, limits), 'max_lifetime');
  });
});

describe('session limit configuration', () => {
  test('defaults: 15 minutes idle, 12 hours in all', () => {
    const config = loadConfig({ NODE_ENV: 'test' });
    assert.equal(config.sessionIdleTimeoutSeconds, 900);
    assert.equal(config.sessionMaxLifetimeSeconds, 43_200);
  });

  test('a setting that would switch automatic logoff off, or contradict itself, stops the start naming the variable', () => {
    for (const [env, variable] of [
      [{ SESSION_IDLE_TIMEOUT_SECONDS: '0' }, 'SESSION_IDLE_TIMEOUT_SECONDS'],
      [{ SESSION_IDLE_TIMEOUT_SECONDS: '604800' }, 'SESSION_IDLE_TIMEOUT_SECONDS'],
      [{ SESSION_IDLE_TIMEOUT_SECONDS: '15m' }, 'SESSION_IDLE_TIMEOUT_SECONDS'],
      [{ SESSION_IDLE_TIMEOUT_SECONDS: '600' }, 'SESSION_IDLE_TIMEOUT_SECONDS'], // shorter than the 900 s access token
      [{ SESSION_MAX_LIFETIME_SECONDS: '99999999' }, 'SESSION_MAX_LIFETIME_SECONDS'],
      [{ SESSION_IDLE_TIMEOUT_SECONDS: '3600', SESSION_MAX_LIFETIME_SECONDS: '1800' }, 'SESSION_MAX_LIFETIME_SECONDS'],
    ] as const) {
      assert.throws(
        () => loadConfig({ NODE_ENV: 'test', ...env }),
        (error: unknown) => error instanceof ConfigError && error.variable === variable,
        JSON.stringify(env),
      );
    }
    const custom = loadConfig({ NODE_ENV: 'test', ACCESS_TOKEN_TTL_SECONDS: '300', SESSION_IDLE_TIMEOUT_SECONDS: '600', SESSION_MAX_LIFETIME_SECONDS: '28800' });
    assert.deepEqual([custom.sessionIdleTimeoutSeconds, custom.sessionMaxLifetimeSeconds], [600, 28_800]);
  });
});

for (const target of databaseTargets()) {
  describe(`automatic logoff on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    let offset = 0;
    const { app } = await startTestApp(db, {}, { now: () => Date.now() + offset });
    const practice = await createTestPractice(app, 'Logoff Spa');

    const login = async (user: TestUser) =>
      (await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password } })).json() as { refreshToken: string };
    const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } });
    /** As if the user's login began `loginAgo` and their token was issued (last refresh) `refreshAgo`. */
    const backdate = (user: TestUser, loginAgo: string, refreshAgo: string) =>
      withPractice(db, practice.id, (tx) =>
        tx.query(
          `UPDATE refresh_tokens SET family_started_at = now() - $2::interval, issued_at = now() - $3::interval WHERE user_id = $1`,
          [user.id, loginAgo, refreshAgo],
        ),
      );
    const expired = (response: { statusCode: number; json(): unknown }) => {
      assert.equal(response.statusCode, 401);
      return (response.json() as { error: { code: string } }).error.code;
    };

    test('a session idle for longer than 15 minutes cannot be refreshed, and stays ended', async () => {
      offset = 0;
      const user = practice.users.STAFF;
      const { refreshToken } = await login(user);
      offset = 15 * MINUTE + 1000;
      const response = await refresh(refreshToken);
      assert.equal(expired(response), 'SESSION_EXPIRED');
      offset = 0;
      assert.equal(expired(await refresh(refreshToken)), 'INVALID_REFRESH_TOKEN', 'the family was revoked, not just refused once');
      const { rows } = await withPractice(db, practice.id, (tx) =>
        tx.query<{ outcome: string; reason: string }>(
          "SELECT outcome, details->>'reason' AS reason FROM audit_events WHERE action = 'auth.session_expired' AND actor_id = $1",
          [user.id],
        ),
      );
      assert.deepEqual(rows, [{ outcome: 'denied', reason: 'idle' }]);
    });

    test('a session refreshed within the idle time goes on: idle counts from the last refresh, not the login', async () => {
      offset = 0;
      const user = practice.users.PRACTITIONER;
      const { refreshToken } = await login(user);
      await backdate(user, '1 hour', '14 minutes');
      const response = await refresh(refreshToken);
      assert.equal(response.statusCode, 200, response.body);
      const next = (response.json() as { refreshToken: string }).refreshToken;
      offset = 14 * MINUTE;
      assert.equal((await refresh(next)).statusCode, 200, 'the refresh restarted the idle clock');
      offset = 0;
    });

    test('a session kept active past its 12-hour lifetime ends although it was never idle', async () => {
      const user = practice.users.MANAGER;
      offset = 0;
      const { refreshToken } = await login(user);
      await backdate(user, '12 hours 1 minute', '1 minute');
      const response = await refresh(refreshToken);
      assert.equal(expired(response), 'SESSION_EXPIRED');
      assert.match((response.json() as { error: { message: string } }).error.message, /maximum lifetime/);
    });
  });
}
