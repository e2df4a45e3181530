// With REDIS_URL, a logout or deactivation on one instance is refused by every other instance at
// once (each keeps its own memory copy too, so Redis going away loses nothing of its own).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const redisUrl = process.env.REDIS_URL;
if (process.env.CI && !redisUrl) throw new Error('CI must set REDIS_URL so the shared-state tests run');

describe('revocations shared through Redis', { skip: redisUrl ? false : 'REDIS_URL not set' }, async () => {
  const target = databaseTargets().at(-1)!;
  const db = await migratedDatabase(target);
  const secrets = { jwtSecret: randomBytes(32).toString('hex'), encryptionKey: randomBytes(32).toString('hex') };
  const a = await startTestApp(db, { ...secrets, redisUrl });
  const b = await startTestApp(db, { ...secrets, redisUrl });
  const practice = await createTestPractice(a.app, 'Shared Spa');

  const login = async (user = practice.users.STAFF) =>
    (await a.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password } })).json() as { accessToken: string };

  test('a token logged out on instance A is refused by instance B', async () => {
    const { accessToken } = await login();
    const headers = { authorization: `Bearer ${accessToken}` };
    assert.equal((await b.app.inject({ url: '/v1/auth/me', headers })).statusCode, 200);
    assert.equal((await a.app.inject({ method: 'POST', url: '/v1/auth/logout', headers, payload: {} })).statusCode, 204);
    assert.equal((await b.app.inject({ url: '/v1/auth/me', headers })).statusCode, 401);
  });

  test('a user deactivated through instance A is locked out of instance B at once', async () => {
    const { accessToken } = await login(practice.users.PRACTITIONER);
    const headers = { authorization: `Bearer ${accessToken}` };
    assert.equal((await b.app.inject({ url: '/v1/auth/me', headers })).statusCode, 200);
    const off = await a.app.inject({ method: 'DELETE', url: `/v1/users/${practice.users.PRACTITIONER.id}`, headers: practice.users.ADMIN.headers });
    assert.equal(off.statusCode, 204);
    assert.equal((await b.app.inject({ url: '/v1/auth/me', headers })).statusCode, 401);
  });
});
