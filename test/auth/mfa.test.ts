// TOTP MFA end to end, with codes computed by an independent implementation (oathtool) where the
// machine has it, and by our own RFC 6238 code otherwise.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { totp, timeStep } from '../../src/auth/totp.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

function hasOathtool(): boolean {
  try {
    execFileSync('oathtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const OATHTOOL = hasOathtool();

/** The code for `secret` at a time offset in steps, from oathtool when available. */
function codeFor(secret: string, algorithm: 'SHA256' | 'SHA1', stepOffset = 0): string {
  const at = Date.now() + stepOffset * 30_000;
  if (OATHTOOL) {
    const flag = algorithm === 'SHA256' ? '--totp=sha256' : '--totp=sha1';
    const now = new Date(at).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    return execFileSync('oathtool', [flag, '--base32', `--now=${now}`, secret], { encoding: 'utf8' }).trim();
  }
  return totp(secret, { algorithm, time: at });
}

for (const target of databaseTargets()) {
  describe(`MFA on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'MFA Spa');
    const user = practice.users.PRACTITIONER;
    const post = (url: string, payload: object, headers = user.headers) => app.inject({ method: 'POST', url, headers, payload });
    const login = (extra: object = {}) =>
      app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password, ...extra } });

    let secret = '';
    let recoveryCodes: string[] = [];

    test('setup returns a secret and an otpauth URI with the blueprint parameters', async () => {
      const withoutPassword = await post('/v1/auth/mfa/setup', {});
      assert.equal(withoutPassword.statusCode, 400, 'a stolen access token alone cannot enrol an authenticator');
      const wrongPassword = await post('/v1/auth/mfa/setup', { password: 'not the password at all' });
      assert.equal(wrongPassword.statusCode, 422);
      const response = await post('/v1/auth/mfa/setup', { password: user.password });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { secret: string; otpauthUri: string; algorithm: string; digits: number; period: number };
      secret = body.secret;
      assert.match(secret, /^[A-Z2-7]{52}$/);
      const uri = new URL(body.otpauthUri);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.host, 'totp');
      assert.equal(uri.searchParams.get('algorithm'), 'SHA256');
      assert.equal(uri.searchParams.get('digits'), '6');
      assert.equal(uri.searchParams.get('period'), '30');
      assert.equal(uri.searchParams.get('secret'), secret);
      assert.equal(uri.searchParams.get('issuer'), 'MedSpaSync Pro');
    });

    test('MFA is not on until a code confirms the enrolment', async () => {
      assert.equal((await login()).statusCode, 200);
    });

    test('the secret is stored encrypted, not in clear', async () => {
      const { rows } = await withPractice(db, practice.id, (tx) =>
        tx.query<{ mfa_pending_secret: string }>('SELECT mfa_pending_secret FROM users WHERE id = $1', [user.id]),
      );
      assert.match(rows[0]!.mfa_pending_secret, /^v1\./);
      assert.ok(!rows[0]!.mfa_pending_secret.includes(secret));
    });

    test('a wrong code does not enable MFA', async () => {
      const response = await post('/v1/auth/mfa/verify', { token: '000000' });
      assert.equal(response.statusCode, 422);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_MFA_TOKEN');
    });

    test(`verify with a code from ${OATHTOOL ? 'oathtool' : 'RFC 6238'} enables MFA and returns 10 recovery codes`, async () => {
      const response = await post('/v1/auth/mfa/verify', { token: codeFor(secret, 'SHA256') });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { mfaEnabled: boolean; recoveryCodes: string[] };
      assert.equal(body.mfaEnabled, true);
      assert.equal(body.recoveryCodes.length, 10);
      assert.equal(new Set(body.recoveryCodes).size, 10);
      recoveryCodes = body.recoveryCodes;
      const stored = await withPractice(db, practice.id, (tx) => tx.query<{ code_hash: string }>('SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1', [user.id]));
      assert.equal(stored.rows.length, 10);
      assert.ok(stored.rows.every((r) => !recoveryCodes.includes(r.code_hash)), 'stored hashed');
    });

    test('login without a code is 401 MFA_REQUIRED', async () => {
      const response = await login();
      assert.equal(response.statusCode, 401);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'MFA_REQUIRED');
    });

    test('login with a wrong code is 401 INVALID_MFA_TOKEN', async () => {
      const response = await login({ mfaToken: '123456' === codeFor(secret, 'SHA256') ? '654321' : '123456' });
      assert.equal(response.statusCode, 401);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_MFA_TOKEN');
    });

    test('a code from the next time step (within the window of 2) is accepted', async () => {
      const response = await login({ mfaToken: codeFor(secret, 'SHA256', 1) });
      assert.equal(response.statusCode, 200, response.body);
    });

    test('a replayed code is refused, and so is any older one', async () => {
      const replay = await login({ mfaToken: codeFor(secret, 'SHA256', 1) });
      assert.equal(replay.statusCode, 401);
      const older = await login({ mfaToken: codeFor(secret, 'SHA256', 0) });
      assert.equal(older.statusCode, 401, 'the current step is older than the one just used');
    });

    test('a code three steps away is outside the window', async () => {
      assert.equal((await login({ mfaToken: codeFor(secret, 'SHA256', 3) })).statusCode, 401);
    });

    test('a recovery code works once in place of the TOTP code', async () => {
      await withPractice(db, practice.id, (tx) => tx.query('UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1', [user.id]));
      const code = recoveryCodes[0]!;
      assert.equal((await login({ mfaToken: code.toLowerCase() })).statusCode, 200);
      assert.equal((await login({ mfaToken: code })).statusCode, 401);
    });

    test('disable needs the password and a valid code; then login needs none', async () => {
      await withPractice(db, practice.id, (tx) => tx.query('UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1', [user.id]));
      assert.equal((await post('/v1/auth/mfa/disable', { token: recoveryCodes[1]! })).statusCode, 400, 'the password is required');
      assert.equal((await post('/v1/auth/mfa/disable', { password: user.password, token: '000000' })).statusCode, 422);
      const response = await post('/v1/auth/mfa/disable', { password: user.password, token: recoveryCodes[1]! });
      assert.equal(response.statusCode, 204, response.body);
      assert.equal((await login()).statusCode, 200);
      const events = await withPractice(db, practice.id, (tx) =>
        tx.query<{ action: string; outcome: string }>("SELECT action, outcome FROM audit_events WHERE action LIKE 'auth.mfa%' ORDER BY id"),
      );
      assert.deepEqual(
        events.rows.map((e) => `${e.action}:${e.outcome}`),
        ['auth.mfa_setup:failure', 'auth.mfa_setup:success', 'auth.mfa_enable:failure', 'auth.mfa_enable:success', 'auth.mfa_disable:failure', 'auth.mfa_disable:success'],
      );
    });

    test('SHA-1 enrolment is available for authenticator apps that ignore the algorithm', async () => {
      const setup = (await post('/v1/auth/mfa/setup', { algorithm: 'SHA1', password: user.password })).json() as { secret: string; otpauthUri: string };
      assert.match(setup.otpauthUri, /algorithm=SHA1/);
      const verified = await post('/v1/auth/mfa/verify', { token: codeFor(setup.secret, 'SHA1') });
      assert.equal(verified.statusCode, 200, verified.body);
      assert.equal((await login({ mfaToken: codeFor(setup.secret, 'SHA1', 1) })).statusCode, 200);
    });

    test('MFA codes never reach the log', async () => {
      void timeStep;
      const code = codeFor(secret, 'SHA256');
      assert.ok(!JSON.stringify((await startTestApp(db)).logs).includes(code));
    });
  });
}
