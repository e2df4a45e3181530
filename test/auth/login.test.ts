// Login, tokens, refresh rotation, logout and forged credentials, through the HTTP API.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const decode = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

for (const target of databaseTargets()) {
  describe(`login and sessions on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const t = await startTestApp(db, { loginLockoutThreshold: 4, loginLockoutMinutes: 15 });
    const { app } = t;
    const practice = await createTestPractice(app, 'Login Spa');
    const staff = practice.users.STAFF;

    const login = (body: object) => app.inject({ method: 'POST', url: '/v1/auth/login', payload: body });

    test('a login returns a token pair and the user; the token carries exactly the blueprint claims', async () => {
      const response = await login({ email: staff.email.toUpperCase(), password: staff.password });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { accessToken: string; refreshToken: string; expiresIn: number; user: { id: string; role: string } };
      assert.equal(body.expiresIn, 900);
      assert.equal(body.user.id, staff.id);
      assert.equal(body.user.role, 'STAFF');
      assert.doesNotMatch(response.body, /password/i);
      const claims = decode(body.accessToken);
      assert.deepEqual(Object.keys(claims).sort(), ['email', 'exp', 'iat', 'jti', 'permissions', 'practiceId', 'role', 'sub']);
      assert.equal(claims.sub, staff.id);
      assert.equal(claims.practiceId, practice.id);
      assert.deepEqual(claims.permissions, ['read:patients', 'read:appointments', 'write:appointments', 'read:services']);
      assert.equal(Number(claims.exp) - Number(claims.iat), 900);
      const me = await app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } });
      assert.equal(me.statusCode, 200);
      assert.equal((me.json() as { email: string }).email, staff.email);
    });

    test('unknown email and wrong password get the same 401 body', async () => {
      const unknown = await login({ email: 'nobody@example.test', password: 'whatever-password' });
      const wrong = await login({ email: practice.users.MANAGER.email, password: 'whatever-password' });
      assert.equal(unknown.statusCode, 401);
      assert.equal(wrong.statusCode, 401);
      const strip = (body: string) => {
        const { error } = JSON.parse(body) as { error: Record<string, unknown> };
        return { code: error.code, message: error.message, details: error.details };
      };
      assert.deepEqual(strip(unknown.body), strip(wrong.body));
    });

    test('a password shorter than the blueprint’s 8 characters is a 400 naming the field, not a failed login', async () => {
      const failures = async () =>
        (await withPractice(db, practice.id, (tx) => tx.query<{ n: number }>('SELECT failed_logins AS n FROM users WHERE id = $1', [staff.id]))).rows[0]!.n;
      const before = await failures();
      const response = await login({ email: staff.email, password: 'short' });
      assert.equal(response.statusCode, 400, response.body);
      const error = (response.json() as { error: { code: string; details: Array<{ field: string }> } }).error;
      assert.equal(error.code, 'VALIDATION_ERROR');
      assert.deepEqual(error.details.map((d) => d.field), ['password']);
      assert.equal(await failures(), before, 'not counted as a failed login');
    });

    test('the 8-character minimum counts as the password policy does (after NFKC): a ligature password still logs in', async () => {
      const ligatures = await createTestPractice(app, 'Ligature Spa');
      const user = ligatures.users.STAFF;
      const typed = 'Q7\ufb03#k\ufb02'; // 6 characters as typed, 9 after normalisation ("ffi", "fl")
      const changed = await app.inject({
        method: 'POST',
        url: '/v1/auth/password',
        headers: user.headers,
        payload: { currentPassword: user.password, newPassword: typed },
      });
      assert.equal(changed.statusCode, 200, changed.body);
      const response = await login({ email: user.email, password: typed });
      assert.equal(response.statusCode, 200, response.body);
    });

    test('the login password never reaches the log', async () => {
      const secret = 'Sup3r-Secret-Passphrase-For-Log-Test';
      await login({ email: staff.email, password: secret });
      await login({ email: staff.email, password: staff.password });
      assert.ok(t.rawLog().includes('/v1/auth/login'), 'the requests were logged');
      assert.ok(!t.rawLog().includes(secret));
      assert.ok(!t.rawLog().includes(staff.password));
    });

    test('repeated failures lock the account, and the lock is audited', async () => {
      const victim = practice.users.PRACTITIONER;
      for (let i = 0; i < 4; i++) assert.equal((await login({ email: victim.email, password: `guess-number-${i}` })).statusCode, 401);
      const locked = await login({ email: victim.email, password: victim.password });
      assert.equal(locked.statusCode, 401, 'even the right password is refused while locked');
      // …with exactly the answer an unknown email gets, so the lock doesn't reveal the account.
      const unknown = await login({ email: 'nobody.at.all@example.test', password: victim.password });
      const answer = (r: typeof locked) => {
        const { error } = r.json() as { error: { code: string; message: string } };
        return [r.statusCode, error.code, error.message, r.headers['retry-after']];
      };
      assert.deepEqual(answer(locked), answer(unknown));
      const events = await withPractice(db, practice.id, (tx) =>
        tx.query<{ action: string; outcome: string }>(
          "SELECT action, outcome FROM audit_events WHERE $1 = ANY (resource_ids) AND action LIKE 'auth.%' ORDER BY id",
          [victim.id],
        ),
      );
      assert.ok(events.rows.some((e) => e.action === 'auth.account_locked'));
      assert.ok(events.rows.some((e) => e.action === 'auth.login' && e.outcome === 'denied'), 'the refused login is audited as locked');
      assert.equal(events.rows.filter((e) => e.action === 'auth.login' && e.outcome === 'failure').length, 4);
      await withPractice(db, practice.id, (tx) => tx.query('UPDATE users SET locked_until = NULL, failed_logins = 0 WHERE id = $1', [victim.id]));
    });

    test('a refresh rotates the token; reusing the old one revokes the whole family', async () => {
      const first = (await login({ email: staff.email, password: staff.password })).json() as { refreshToken: string };
      const refresh = (token: string) => app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: token } });
      const second = await refresh(first.refreshToken);
      assert.equal(second.statusCode, 200, second.body);
      const rotated = second.json() as { refreshToken: string; accessToken: string };
      assert.notEqual(rotated.refreshToken, first.refreshToken);
      const reuse = await refresh(first.refreshToken);
      assert.equal(reuse.statusCode, 401);
      assert.equal((reuse.json() as { error: { code: string } }).error.code, 'REFRESH_TOKEN_REUSED');
      const afterTheft = await refresh(rotated.refreshToken);
      assert.equal(afterTheft.statusCode, 401, 'the legitimate holder’s newer token is revoked too');
      const me = await app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${rotated.accessToken}` } });
      assert.equal(me.statusCode, 401, 'the access token issued from the stolen chain stops working too');
      const audit = await withPractice(db, practice.id, (tx) =>
        tx.query("SELECT 1 FROM audit_events WHERE action = 'auth.refresh_reuse_detected'"),
      );
      assert.equal(audit.rows.length, 1);
    });

    test('refresh tokens are stored only as hashes', async () => {
      const { refreshToken } = (await login({ email: staff.email, password: staff.password })).json() as { refreshToken: string };
      const { rows } = await withPractice(db, practice.id, (tx) => tx.query<{ token_hash: string }>('SELECT token_hash FROM refresh_tokens'));
      assert.ok(rows.length > 0);
      assert.ok(rows.every((r) => r.token_hash !== refreshToken && !r.token_hash.includes(refreshToken.slice(8))));
    });

    test('logout revokes the access token and the refresh family', async () => {
      const session = (await login({ email: staff.email, password: staff.password })).json() as { accessToken: string; refreshToken: string };
      const headers = { authorization: `Bearer ${session.accessToken}` };
      const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers, payload: { refreshToken: session.refreshToken } });
      assert.equal(out.statusCode, 204, out.body);
      assert.equal((await app.inject({ url: '/v1/auth/me', headers })).statusCode, 401);
      const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: session.refreshToken } });
      assert.equal(refreshed.statusCode, 401);
    });

    describe('sessions ended and begun in the same second', async () => {
      // Fresh users: these tests cut off every token their user holds.
      const spa = await createTestPractice(app, 'Session Spa');
      const me = (token: string) => app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${token}` } });
      type Session = { accessToken: string; refreshToken: string };

      test('a logout with no body at all ends every session: this token, other devices’ access and refresh tokens', async () => {
        const user = spa.users.PRACTITIONER;
        const phone = (await login({ email: user.email, password: user.password })).json() as Session;
        const desk = (await login({ email: user.email, password: user.password })).json() as Session;
        const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { authorization: `Bearer ${desk.accessToken}` } });
        assert.equal(out.statusCode, 204, out.body);
        // Many clients send a JSON Content-Type with an empty body: the same logout.
        const laptop = (await login({ email: user.email, password: user.password })).json() as Session;
        const emptyJson = await app.inject({
          method: 'POST',
          url: '/v1/auth/logout',
          headers: { authorization: `Bearer ${laptop.accessToken}`, 'content-type': 'application/json' },
          payload: '',
        });
        assert.equal(emptyJson.statusCode, 204, emptyJson.body);
        assert.equal((await me(laptop.accessToken)).statusCode, 401);
        assert.equal((await me(desk.accessToken)).statusCode, 401);
        assert.equal((await me(phone.accessToken)).statusCode, 401, 'the other device’s access token is cut off too');
        const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: phone.refreshToken } });
        assert.equal(refreshed.statusCode, 401);
        const again = (await login({ email: user.email, password: user.password })).json() as Session;
        assert.equal((await me(again.accessToken)).statusCode, 200, 'a login right after works');
      });

      test('a token issued between two cut-offs in the same second is refused by the second', async (t) => {
        // Within one second: a role change, a login (its token dated at the cut-off), the role
        // changed back. The second cut-off must land after the first, or that token would live on.
        const fixed = Math.floor(Date.now() / 1000) * 1000 + 500;
        t.mock.method(Date, 'now', () => fixed);
        const user = spa.users.MANAGER;
        const setRole = (role: string) => app.inject({ method: 'PATCH', url: `/v1/users/${user.id}`, headers: spa.users.ADMIN.headers, payload: { role } });
        assert.equal((await setRole('STAFF')).statusCode, 200);
        const between = (await login({ email: user.email, password: user.password })).json() as Session;
        assert.equal((await me(between.accessToken)).statusCode, 200, 'works while its role is current');
        assert.equal((await setRole('MANAGER')).statusCode, 200);
        assert.equal((await me(between.accessToken)).statusCode, 401, 'a STAFF token must not outlive the change back to MANAGER');
        const after = (await login({ email: user.email, password: user.password })).json() as Session;
        assert.equal((await me(after.accessToken)).statusCode, 200);
      });

      test('a login and a refresh right after a role change give tokens that work at once', async () => {
        const user = spa.users.STAFF;
        const before = (await login({ email: user.email, password: user.password })).json() as Session;
        for (const role of ['MANAGER', 'STAFF']) {
          const changed = await app.inject({ method: 'PATCH', url: `/v1/users/${user.id}`, headers: spa.users.ADMIN.headers, payload: { role } });
          assert.equal(changed.statusCode, 200, changed.body);
          const fresh = (await login({ email: user.email, password: user.password })).json() as Session;
          const response = await me(fresh.accessToken);
          assert.equal(response.statusCode, 200, `login after the change to ${role}: ${response.body}`);
          assert.equal((response.json() as { role: string }).role, role);
        }
        assert.equal((await me(before.accessToken)).statusCode, 401, 'the token from before the change is cut off');
        const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: before.refreshToken } });
        assert.equal(refreshed.statusCode, 200, refreshed.body);
        assert.equal((await me((refreshed.json() as Session).accessToken)).statusCode, 200, 'a refresh right after the change works');
      });
    });

    test('the Bearer scheme is case-insensitive, the token is not', async () => {
      const { accessToken } = (await login({ email: staff.email, password: staff.password })).json() as { accessToken: string };
      for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
        assert.equal((await app.inject({ url: '/v1/auth/me', headers: { authorization: `${scheme} ${accessToken}` } })).statusCode, 200, scheme);
      }
      const flipped = accessToken.slice(0, -1) + (accessToken.endsWith('A') ? 'B' : 'A');
      assert.equal((await app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${flipped}` } })).statusCode, 401);
    });

    test('a revoked token stays revoked after a restart', async () => {
      const session = (await login({ email: staff.email, password: staff.password })).json() as { accessToken: string; refreshToken: string };
      const headers = { authorization: `Bearer ${session.accessToken}` };
      // This session only: without a refresh token the logout would end every session of the user.
      await app.inject({ method: 'POST', url: '/v1/auth/logout', headers, payload: { refreshToken: session.refreshToken } });
      const restarted = await startTestApp(db, { jwtSecret: app.config.jwtSecret, encryptionKey: app.config.encryptionKey });
      assert.equal((await restarted.app.inject({ url: '/v1/auth/me', headers })).statusCode, 401);
    });

    describe('forged tokens', () => {
      const header = { alg: 'HS256', typ: 'JWT', kid: app.auth.signingKid, iss: app.config.jwtIssuer, aud: app.config.jwtAudience };
      const claims = {
        sub: staff.id,
        email: staff.email,
        role: 'ADMIN',
        practiceId: practice.id,
        permissions: ['read:*', 'write:*', 'delete:*', 'admin:*'],
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 600,
        jti: 'forged-1',
      };
      const sign = (h: object, c: object, key: string) => {
        const input = `${b64(h)}.${b64(c)}`;
        return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
      };
      const me = (token: string) => app.inject({ url: '/v1/users', headers: { authorization: `Bearer ${token}` } });

      test('refuses a token signed with alg none', async () => {
        const token = `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`;
        assert.equal((await me(token)).statusCode, 401);
      });
      test('refuses a token signed with the wrong key', async () => {
        assert.equal((await me(sign(header, claims, 'an-attacker-guessed-secret-of-32-chars!!'))).statusCode, 401);
      });
      test('refuses an expired token', async () => {
        const expired = { ...claims, iat: claims.iat - 7200, exp: claims.iat - 3600 };
        const response = await me(sign(header, expired, app.config.jwtSecret));
        assert.equal(response.statusCode, 401);
        assert.match((response.json() as { error: { message: string } }).error.message, /expired/);
      });
      test('refuses a token for another audience or issuer', async () => {
        assert.equal((await me(sign({ ...header, aud: 'other-api' }, claims, app.config.jwtSecret))).statusCode, 401);
        assert.equal((await me(sign({ ...header, iss: 'evil' }, claims, app.config.jwtSecret))).statusCode, 401);
      });
      test('a correctly signed token still needs the permission it claims to hold', async () => {
        // Issued now: earlier tests cut off every token of this user issued before them.
        const now = Math.floor(Date.now() / 1000) + 1;
        const response = await me(sign(header, { ...claims, iat: now, exp: now + 600 }, app.config.jwtSecret));
        assert.equal(response.statusCode, 200, 'a genuinely signed ADMIN token works (the signature is the trust)');
      });
      test('a token survives a key rotation through JWT_PREVIOUS_SECRET', async () => {
        const rotated = await startTestApp(db, {
          jwtSecret: 'a-brand-new-secret-that-is-32-characters-long',
          jwtPreviousSecret: app.config.jwtSecret,
        });
        const response = await rotated.app.inject({ url: '/v1/auth/me', headers: practice.users.ADMIN.headers });
        assert.equal(response.statusCode, 200, response.body);
        const stranger = await startTestApp(db, { jwtSecret: 'a-brand-new-secret-that-is-32-characters-long' });
        assert.equal((await stranger.app.inject({ url: '/v1/auth/me', headers: practice.users.ADMIN.headers })).statusCode, 401);
      });
    });

    test('a malformed Authorization header is 401, not 500', async () => {
      for (const value of ['Bearer', 'Basic dXNlcjpwYXNz', 'Bearer a.b', `Bearer ${'x'.repeat(9000)}`]) {
        const response = await app.inject({ url: '/v1/auth/me', headers: { authorization: value } });
        assert.equal(response.statusCode, 401, value.slice(0, 20));
      }
    });

    test('password change ends other sessions and returns a working pair', async () => {
      const manager = practice.users.MANAGER;
      const other = (await login({ email: manager.email, password: manager.password })).json() as { accessToken: string; refreshToken: string };
      const changed = await app.inject({
        method: 'POST',
        url: '/v1/auth/password',
        headers: { authorization: `Bearer ${other.accessToken}` },
        payload: { currentPassword: manager.password, newPassword: 'a whole new passphrase for manager' },
      });
      assert.equal(changed.statusCode, 200, changed.body);
      const fresh = changed.json() as { accessToken: string };
      assert.equal((await app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${fresh.accessToken}` } })).statusCode, 200);
      assert.equal((await app.inject({ url: '/v1/auth/me', headers: manager.headers })).statusCode, 401, 'older tokens are cut off');
      const oldRefresh = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: other.refreshToken } });
      assert.equal(oldRefresh.statusCode, 401);
      assert.equal((await login({ email: manager.email, password: manager.password })).statusCode, 401);
      assert.equal((await login({ email: manager.email, password: 'a whole new passphrase for manager' })).statusCode, 200);
    });

    test('a common password is refused on change', async () => {
      const admin = practice.users.ADMIN;
      const response = await app.inject({
        method: 'POST',
        url: '/v1/auth/password',
        headers: admin.headers,
        payload: { currentPassword: admin.password, newPassword: 'password1' },
      });
      assert.equal(response.statusCode, 400);
      assert.equal((response.json() as { error: { details: Array<{ field: string }> } }).error.details[0]?.field, 'newPassword');
    });
  });
}
