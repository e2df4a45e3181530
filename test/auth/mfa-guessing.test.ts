// Guessing MFA codes (and passwords) with a stolen access token. Login's MFA step was counted per
// account; the signed-in routes were not, and disabling MFA needed no password, so a stolen token
// could try codes from rotating addresses until the global per-IP limit.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { totp } from '../../src/auth/totp.js';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestUser } from '../helpers/identity.js';

const code = (secret: string, stepOffset = 0) => totp(secret, { algorithm: 'SHA256', time: Date.now() + stepOffset * 30_000 });
let nextIp = 1;
const rotatingIp = () => `198.51.${Math.floor(nextIp / 250) % 250}.${(nextIp++ % 250) + 1}`;
const errorCode = (response: { json(): unknown }) => (response.json() as { error: { code: string } }).error.code;

/** Enrols the user's authenticator with the current step's code; returns the secret. */
async function enrol(app: FastifyInstance, user: TestUser): Promise<string> {
  const setup = await app.inject({ method: 'POST', url: '/v1/auth/mfa/setup', headers: user.headers, payload: { password: user.password } });
  const { secret } = setup.json() as { secret: string };
  const verified = await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, payload: { token: code(secret) } });
  assert.equal(verified.statusCode, 200, verified.body);
  return secret;
}

const mfaEnabled = async (app: FastifyInstance, practiceId: string, userId: string) =>
  (await withPractice(app.db, practiceId, (tx) => tx.query<{ on: boolean }>('SELECT mfa_enabled AS on FROM users WHERE id = $1', [userId]))).rows[0]!.on;

for (const target of databaseTargets()) {
  describe(`MFA guessing on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);

    describe('with the per-account limit', async () => {
      const { app } = await startTestApp(db, { rateLimitEnabled: true });
      const practice = await createTestPractice(app, 'Guess Spa');

      test('a stolen access token cannot turn MFA off without the password', async () => {
        const user = practice.users.STAFF;
        const secret = await enrol(app, user);
        const disable = (payload: object) => app.inject({ method: 'POST', url: '/v1/auth/mfa/disable', headers: user.headers, remoteAddress: rotatingIp(), payload });
        assert.equal((await disable({ token: code(secret, 1) })).statusCode, 400);
        const wrong = await disable({ password: 'not the password at all', token: code(secret, 1) });
        assert.equal(wrong.statusCode, 422);
        assert.deepEqual((wrong.json() as { error: { details: unknown } }).error.details, [{ field: 'password', message: 'is not correct' }]);
        assert.equal(await mfaEnabled(app, practice.id, user.id), true);
        assert.equal((await disable({ password: user.password, token: code(secret, 1) })).statusCode, 204);
      });

      test("a stolen access token cannot guess MFA disable codes past the account's limit", async () => {
        const user = practice.users.PRACTITIONER;
        const secret = await enrol(app, user);
        const { max } = app.config.rateLimits.loginAccount;
        const disable = (token: string) =>
          app.inject({ method: 'POST', url: '/v1/auth/mfa/disable', headers: user.headers, remoteAddress: rotatingIp(), payload: { password: user.password, token } });
        const wrongCode = code(secret, 1) === '000000' ? '111111' : '000000';
        for (let i = 0; i < max; i++) assert.equal((await disable(wrongCode)).statusCode, 422, `guess ${i + 1}`);
        const refused = await disable(code(secret, 1));
        assert.equal(refused.statusCode, 429, 'even the right code: the account’s budget is spent, whatever the address');
        assert.match(String(refused.headers['ratelimit-policy']), /^"loginAccount";/);
        assert.equal(await mfaEnabled(app, practice.id, user.id), true);
      });

      test("a stolen access token cannot guess enrolment codes past the account's limit either", async () => {
        const user = practice.users.MANAGER;
        await app.inject({ method: 'POST', url: '/v1/auth/mfa/setup', headers: user.headers, payload: { password: user.password } });
        const { max } = app.config.rateLimits.loginAccount;
        const statuses: number[] = [];
        for (let i = 0; i < max; i++) {
          statuses.push((await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, remoteAddress: rotatingIp(), payload: { token: '000000' } })).statusCode);
        }
        // setup spent one attempt and was answered 200, which gives the owner a fresh budget.
        assert.deepEqual(statuses, Array(max).fill(422));
        const refused = await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, remoteAddress: rotatingIp(), payload: { token: '000000' } });
        assert.equal(refused.statusCode, 429);
      });
    });

    describe('with the account lockout', async () => {
      const { app } = await startTestApp(db, { loginLockoutThreshold: 3, loginLockoutMinutes: 15 });
      const practice = await createTestPractice(app, 'Lockout Spa');

      test('wrong MFA codes on disable count toward the lockout: then even the right password and code are refused, and login too', async () => {
        const user = practice.users.STAFF;
        const secret = await enrol(app, user);
        const disable = (token: string) =>
          app.inject({ method: 'POST', url: '/v1/auth/mfa/disable', headers: user.headers, remoteAddress: rotatingIp(), payload: { password: user.password, token } });
        for (let i = 0; i < 3; i++) assert.equal(errorCode(await disable('00000' + i)), 'INVALID_MFA_TOKEN');
        const locked = await disable(code(secret, 1));
        assert.equal(locked.statusCode, 422, 'answered like a wrong code: nothing to learn from it');
        assert.equal(await mfaEnabled(app, practice.id, user.id), true);
        const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password, mfaToken: code(secret, 2) } });
        assert.equal(login.statusCode, 401);
        assert.equal(errorCode(login), 'INVALID_CREDENTIALS');
        const { rows } = await withPractice(db, practice.id, (tx) =>
          tx.query<{ action: string; outcome: string; reason: string }>(
            `SELECT action, outcome, details->>'reason' AS reason FROM audit_events
              WHERE $1 = ANY(resource_ids) AND action IN ('auth.mfa_disable', 'auth.account_locked') ORDER BY id`,
            [user.id],
          ),
        );
        assert.deepEqual(
          rows.map((r) => `${r.action}:${r.outcome}:${r.reason ?? ''}`),
          ['auth.mfa_disable:failure:bad_code', 'auth.mfa_disable:failure:bad_code', 'auth.mfa_disable:failure:bad_code', 'auth.account_locked:success:', 'auth.mfa_disable:denied:locked'],
        );
      });

      test('wrong enrolment codes and wrong passwords on signed-in routes count toward the same lockout', async () => {
        const user = practice.users.PRACTITIONER;
        await app.inject({ method: 'POST', url: '/v1/auth/mfa/setup', headers: user.headers, payload: { password: user.password } });
        await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, payload: { token: '000000' } });
        await app.inject({ method: 'POST', url: '/v1/auth/password', headers: user.headers, payload: { currentPassword: 'a wrong guess here', newPassword: 'a brand new passphrase' } });
        const failures = await withPractice(db, practice.id, (tx) =>
          tx.query<{ failed_logins: number }>('SELECT failed_logins FROM users WHERE id = $1', [user.id]),
        );
        assert.equal(failures.rows[0]!.failed_logins, 2);
        await app.inject({ method: 'POST', url: '/v1/auth/mfa/verify', headers: user.headers, payload: { token: '000000' } });
        const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password } });
        assert.equal(login.statusCode, 401, 'the third wrong credential, on any route, locked the account');
      });
    });
  });
}
