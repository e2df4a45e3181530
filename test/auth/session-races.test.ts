// Races between a refresh and the things that must end sessions. Run on real PostgreSQL, where
// transactions truly overlap (PGlite runs one at a time).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lockRefreshToken, rotateRefreshToken } from '../../src/auth/sessions.js';
import { loadRevocations, MemoryRevocationStore } from '../../src/auth/revocation.js';
import { withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const postgres = databaseTargets().find((target) => target.kind === 'postgres');

describe('session races on PostgreSQL', { skip: postgres ? false : 'DATABASE_URL not set' }, async () => {
  const db = await migratedDatabase(postgres!);
  const { app } = await startTestApp(db);
  const practice = await createTestPractice(app, 'Race Spa');
  const victim = practice.users.MANAGER;

  test('a refresh in flight during a password change cannot leave the thief a working token', async () => {
    const login = (await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: victim.email, password: victim.password } })).json() as {
      accessToken: string;
      refreshToken: string;
    };
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // The thief's refresh: locks and rotates, then sits in its transaction while the victim acts.
    const thief = withSystem(db, async (tx) => {
      const stored = (await lockRefreshToken(tx, login.refreshToken))!;
      const pair = await rotateRefreshToken(app, tx, stored, { id: victim.id, email: victim.email, role: 'MANAGER', practiceId: practice.id }, { ip: null, userAgent: null });
      await held;
      return pair;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const change = app.inject({
      method: 'POST',
      url: '/v1/auth/password',
      headers: { authorization: `Bearer ${login.accessToken}` },
      payload: { currentPassword: victim.password, newPassword: 'the victim takes control again' },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    const stolen = await thief;
    assert.equal((await change).statusCode, 200);
    const attempt = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: stolen.refreshToken } });
    assert.equal(attempt.statusCode, 401, 'the rotation that raced the password change is dead');
  });

  test('five concurrent refreshes with one refresh token answer REFRESH_TOKEN_REUSED at once, never a deadlock', async () => {
    const staff = practice.users.STAFF;
    const login = (await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: staff.email, password: staff.password } })).json() as {
      refreshToken: string;
    };
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: login.refreshToken } })),
    );
    const codes = responses.map((r) => (r.statusCode === 200 ? 'ok' : (r.json() as { error: { code: string } }).error.code)).sort();
    // One may win the race; every other one is a reuse (and ends the family). A deadlock the
    // database breaks after deadlock_timeout would show up here as CONCURRENT_UPDATE (409).
    assert.ok(codes.filter((c) => c === 'ok').length <= 1, codes.join());
    assert.deepEqual(codes.filter((c) => c !== 'ok'), Array(codes.filter((c) => c !== 'ok').length).fill('REFRESH_TOKEN_REUSED'), codes.join());
    assert.ok(codes.includes('REFRESH_TOKEN_REUSED'), codes.join());
  });

  test('revocations written by another process reach a running instance through PostgreSQL', async () => {
    const store = new MemoryRevocationStore();
    await withSystem(db, (tx) =>
      tx.query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ('jti-from-elsewhere', now() + interval '10 minutes')"),
    );
    await loadRevocations(db, store, 900, new Date(Date.now() - 60_000));
    assert.equal(await store.isTokenRevoked('jti-from-elsewhere'), true);
  });
});
