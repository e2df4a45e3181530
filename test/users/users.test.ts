import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withPractice } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

for (const target of databaseTargets()) {
  describe(`users on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Users Spa');
    const other = await createTestPractice(app, 'Rival Spa');
    const admin = practice.users.ADMIN;
    const newUser = { email: 'New.Injector@Example.test', password: 'long enough passphrase 42', role: 'PRACTITIONER', firstName: 'Zoë', lastName: "O'Neil-Smith" };
    let createdId = '';

    test('an ADMIN creates a user: 201, Location, email normalised, no password in the body', async () => {
      const response = await app.inject({ method: 'POST', url: '/v1/users', headers: admin.headers, payload: newUser });
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json() as { id: string; email: string; role: string; firstName: string };
      createdId = body.id;
      assert.equal(response.headers.location, `/v1/users/${body.id}`);
      assert.equal(body.email, 'new.injector@example.test');
      assert.equal(body.firstName, 'Zoë');
      assert.doesNotMatch(response.body, /password/i);
      const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: newUser.email, password: newUser.password } });
      assert.equal(login.statusCode, 200);
    });

    test('the same email again is 409 USER_EXISTS', async () => {
      const response = await app.inject({ method: 'POST', url: '/v1/users', headers: admin.headers, payload: { ...newUser, email: 'new.injector@example.test' } });
      assert.equal(response.statusCode, 409);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'USER_EXISTS');
    });

    test('NIST password rules: 8 minimum, 64+ allowed, common passwords refused', async () => {
      const attempt = (password: string, email: string) =>
        app.inject({ method: 'POST', url: '/v1/users', headers: admin.headers, payload: { ...newUser, email, password } });
      assert.equal((await attempt('short1!', 'a1@example.test')).statusCode, 400);
      assert.equal((await attempt('iloveyou123', 'a2@example.test')).statusCode, 400);
      assert.equal((await attempt('x'.repeat(10) + ' correct horse battery staple '.repeat(3), 'a3@example.test')).statusCode, 201);
      const common = await attempt('password123', 'a4@example.test');
      assert.equal((common.json() as { error: { details: Array<{ field: string }> } }).error.details[0]?.field, 'password');
    });

    test('an invalid role or extra field is a 400 with details', async () => {
      const response = await app.inject({ method: 'POST', url: '/v1/users', headers: admin.headers, payload: { ...newUser, email: 'b@example.test', role: 'OWNER', isAdmin: true } });
      assert.equal(response.statusCode, 400);
      const fields = (response.json() as { error: { details: Array<{ field: string }> } }).error.details.map((d) => d.field);
      assert.ok(fields.includes('role') && fields.includes('isAdmin'), fields.join());
    });

    test('STAFF and MANAGER cannot manage users (403 naming the permission)', async () => {
      for (const role of ['STAFF', 'MANAGER', 'PRACTITIONER'] as const) {
        const response = await app.inject({ url: '/v1/users', headers: practice.users[role].headers });
        assert.equal(response.statusCode, 403, role);
        assert.match((response.json() as { error: { message: string } }).error.message, /admin:users/);
      }
    });

    test('list is paginated and filterable', async () => {
      const response = await app.inject({ url: '/v1/users?role=PRACTITIONER&limit=1', headers: admin.headers });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { data: Array<{ role: string }>; pagination: { total: number; totalPages: number; limit: number } };
      assert.equal(body.data.length, 1);
      assert.equal(body.pagination.total, 3);
      assert.equal(body.pagination.totalPages, 3);
      assert.equal((await app.inject({ url: '/v1/users?limit=101', headers: admin.headers })).statusCode, 400);
    });

    test('a role change takes effect at once: old tokens stop working, and it is audited', async () => {
      const staff = practice.users.STAFF;
      const response = await app.inject({ method: 'PATCH', url: `/v1/users/${staff.id}`, headers: admin.headers, payload: { role: 'MANAGER' } });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal((await app.inject({ url: '/v1/auth/me', headers: staff.headers })).statusCode, 401);
      const { rows } = await withPractice(db, practice.id, (tx) =>
        tx.query<{ details: { from: string; to: string } }>("SELECT details FROM audit_events WHERE action = 'user.role_change'"),
      );
      assert.deepEqual(rows.map((r) => r.details), [{ from: 'STAFF', to: 'MANAGER' }]);
    });

    test('a deactivated user’s tokens stop working at once and they cannot log in', async () => {
      const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: newUser.email, password: newUser.password } });
      const { accessToken, refreshToken } = login.json() as { accessToken: string; refreshToken: string };
      const response = await app.inject({ method: 'DELETE', url: `/v1/users/${createdId}`, headers: admin.headers });
      assert.equal(response.statusCode, 204);
      assert.equal((await app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode, 401);
      assert.equal((await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } })).statusCode, 401);
      assert.equal((await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: newUser.email, password: newUser.password } })).statusCode, 401);
      const user = (await app.inject({ url: `/v1/users/${createdId}`, headers: admin.headers })).json() as { active: boolean };
      assert.equal(user.active, false, 'kept, not erased');
    });

    test('the last active ADMIN cannot be demoted or deactivated', async () => {
      const response = await app.inject({ method: 'PATCH', url: `/v1/users/${admin.id}`, headers: admin.headers, payload: { role: 'STAFF' } });
      assert.equal(response.statusCode, 422);
      assert.equal((response.json() as { error: { code: string } }).error.code, 'LAST_ADMIN');
      assert.equal((await app.inject({ method: 'DELETE', url: `/v1/users/${admin.id}`, headers: admin.headers })).statusCode, 422);
    });

    test('practice B’s admin gets 404 for practice A’s user, for every verb', async () => {
      const intruder = other.users.ADMIN.headers;
      const target = practice.users.PRACTITIONER.id;
      assert.equal((await app.inject({ url: `/v1/users/${target}`, headers: intruder })).statusCode, 404);
      assert.equal((await app.inject({ method: 'PATCH', url: `/v1/users/${target}`, headers: intruder, payload: { role: 'ADMIN' } })).statusCode, 404);
      assert.equal((await app.inject({ method: 'DELETE', url: `/v1/users/${target}`, headers: intruder })).statusCode, 404);
      const list = (await app.inject({ url: '/v1/users?limit=100', headers: intruder })).json() as { data: Array<{ id: string }> };
      assert.ok(!list.data.some((u) => u.id === target));
      assert.equal((await app.inject({ url: '/v1/users/not-a-uuid', headers: admin.headers })).statusCode, 404);
    });

    test('audit events are listed for admins, filtered, and only their practice’s', async () => {
      const response = await app.inject({ url: '/v1/audit-events?action=user.*&limit=100', headers: admin.headers });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json() as { data: Array<{ action: string; requestId: string }>; pagination: { total: number } };
      assert.ok(body.data.length > 0 && body.data.every((e) => e.action.startsWith('user.')));
      const theirs = (await app.inject({ url: '/v1/audit-events?limit=100', headers: other.users.ADMIN.headers })).json() as { data: Array<{ action: string }> };
      assert.ok(!theirs.data.some((e) => e.action === 'user.role_change'));
      assert.equal((await app.inject({ url: '/v1/audit-events', headers: practice.users.MANAGER.headers })).statusCode, 403, 'read:* does not reach the audit log');
      const verify = await app.inject({ url: '/v1/audit-events/verify', headers: admin.headers });
      assert.equal(verify.statusCode, 200);
      assert.equal((verify.json() as { ok: boolean }).ok, true);
    });
  });
}
