// The operator CLI works on the database without the server: create a practice, a user, reset a
// password, create an API key. Run as a real process against a temporary PGlite directory.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { openPglite } from '../src/db/database.js';
import { withSystem } from '../src/db/scope.js';
import { verifyPassword } from '../src/auth/passwords.js';
import { migrate } from '../src/db/migrate.js';
import { startTestApp } from './helpers/app.js';
import { createTestPractice } from './helpers/identity.js';

const dataDir = mkdtempSync(join(tmpdir(), 'medspa-cli-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliWith({}, ...args);
}

async function cliWith(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', NODE_ENV: 'development', LOG_LEVEL: 'silent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('create a practice, an admin, reset the password and create an API key', async () => {
  const practice = await cli('create-practice', '--name', 'Glow Med Spa', '--time-zone', 'America/Chicago');
  assert.equal(practice.code, 0, practice.stderr);
  const practiceId = /practice ([0-9a-f-]{36})/.exec(practice.stdout)?.[1];
  assert.ok(practiceId);

  const user = await cli('create-user', '--practice', practiceId, '--email', 'Owner@Glow.test', '--role', 'ADMIN');
  assert.equal(user.code, 0, user.stderr);
  assert.match(user.stdout, /Password \(shown once\): \S{12,}/);

  const reset = await cli('reset-password', '--email', 'owner@glow.test', '--password', 'a brand new passphrase');
  assert.equal(reset.code, 0, reset.stderr);

  const mfa = await cli('reset-mfa', '--email', 'owner@glow.test');
  assert.equal(mfa.code, 0, mfa.stderr);

  const key = await cli('create-api-key', '--practice', practiceId, '--name', 'POS', '--permissions', 'read:patients,read:services');
  assert.equal(key.code, 0, key.stderr);
  const apiKey = /Key \(shown once\): (msp_live_\S+)/.exec(key.stdout)?.[1];
  assert.ok(apiKey);

  const unknown = await cli('create-api-key', '--practice', practiceId, '--name', 'Typo', '--permissions', 'read:patients,read:nonsense');
  assert.notEqual(unknown.code, 0, 'a permission that does not exist is refused, not stored');
  assert.match(unknown.stderr, /not known permissions: read:nonsense/);

  const db = await openPglite({ dataDir });
  try {
    const rows = await withSystem(db, async (tx) => ({
      user: (await tx.query<{ password_hash: string; role: string }>("SELECT password_hash, role FROM users WHERE email = 'owner@glow.test'")).rows[0]!,
      key: (await tx.query<{ key_hash: string; permissions: string[] }>('SELECT key_hash, permissions FROM api_keys')).rows[0]!,
      audit: (await tx.query<{ action: string }>('SELECT action FROM audit_events ORDER BY id')).rows.map((r) => r.action),
    }));
    assert.equal(rows.user.role, 'ADMIN');
    assert.ok(await verifyPassword(rows.user.password_hash, 'a brand new passphrase'));
    assert.notEqual(rows.key.key_hash, apiKey);
    assert.deepEqual(rows.key.permissions, ['read:patients', 'read:services']);
    assert.deepEqual(rows.audit, ['practice.create', 'user.create', 'auth.password_reset', 'auth.mfa_reset', 'api_key.create']);
  } finally {
    await db.close();
  }
});

test('bad arguments exit 64 with a message naming the option', async () => {
  const result = await cli('create-user', '--practice', 'nope', '--email', 'a@b.test', '--role', 'OWNER');
  assert.equal(result.code, 64);
  assert.match(result.stderr, /--role/);
  const weak = await cli('reset-password', '--email', 'owner@glow.test', '--password', 'password');
  assert.equal(weak.code, 64);
  assert.match(weak.stderr, /--password/);
});

test('rotate-data-key re-encrypts a practice\'s patients under a new data key; a wrong PHI_MASTER_KEY is refused', async () => {
  const phiEnv = { PHI_MASTER_KEY: 'cli-test-phi-master-key-of-32-characters-at-least', DATA_KEY_CACHE_SECONDS: '1' };
  const db = await openPglite({ dataDir });
  let practiceId: string;
  let patientId: string;
  try {
    await migrate(db);
    const { app } = await startTestApp(db, { phi: { masterKey: phiEnv.PHI_MASTER_KEY, previousMasterKeys: [], dataKeyCacheSeconds: 1, rowCacheSize: 0 } });
    const practice = await createTestPractice(app, 'Rotation Spa');
    practiceId = practice.id;
    const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: practice.users.ADMIN.headers, payload: { firstName: 'Cli', lastName: 'Rotation' } });
    assert.equal(created.statusCode, 201, created.body);
    patientId = (created.json() as { id: string }).id;
    await app.close();
  } finally {
    await db.close();
  }
  const wrong = await cliWith({ ...phiEnv, PHI_MASTER_KEY: 'not-the-master-key-but-32-characters-long' }, 'rotate-data-key', '--practice', practiceId);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /PHI_MASTER_KEY \(key id [0-9a-f]+\) is not the master key that wrapped the stored data keys/);
  const rotated = await cliWith(phiEnv, 'rotate-data-key', '--practice', practiceId, '--batch-size', '10');
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.match(rotated.stdout, /Rotated to data key version 2: 1 patient rows re-encrypted/);
  const check = await openPglite({ dataDir });
  try {
    const { rows } = await check.query<{ phi_key: number }>('SELECT phi_key FROM patients WHERE id = $1', [patientId]);
    assert.equal(rows[0]!.phi_key, 2);
  } finally {
    await check.close();
  }
});
