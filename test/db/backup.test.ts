// Backups that restore (HIPAA 164.308(a)(7)): a real server takes writes through its API while
// `npm run cli -- backup` runs; the backup is restored into a fresh target with `restore`, and the
// restored copy holds every patient acknowledged before the backup started, with every audit
// chain verifying. PGlite always (the backup comes over the server's backup socket); PostgreSQL
// (pg_dump / pg_restore) when DATABASE_URL is set.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { verifyAuditChain } from '../../src/audit/audit.js';
import { backupFormatOf, checkDumpCompatible, parseToolMajor, withoutApplicationFiles } from '../../src/db/backup.js';
import { openPglite, openPostgres, type Database } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';
import { spawnNode, spawnServer, startServer, tempDir, type ServerHandle } from '../helpers/process.js';

const ADMIN = { email: 'backup.admin@example.test', password: 'correct horse battery staple' };

async function login(server: ServerHandle): Promise<string> {
  const response = await fetch(`${server.baseUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(ADMIN),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { accessToken: string }).accessToken;
}

/**
 * Writers creating patients through the API until stopped. `acknowledged` grows with the id of
 * every 201 as it arrives.
 */
function startWriteLoad(server: ServerHandle, token: string, writers = 4) {
  const acknowledged: string[] = [];
  let stopped = false;
  let failure: Error | null = null;
  let n = 0;
  // Names take letters only: "Writer Bcd" for 123.
  const lettersOf = (value: number) => [...String(value)].map((digit) => 'abcdefghij'[Number(digit)]).join('');
  const writer = async () => {
    while (!stopped) {
      const response = await fetch(`${server.baseUrl}/v1/patients`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ firstName: 'Load', lastName: `Writer ${lettersOf(n++)}`, dateOfBirth: '1985-02-03' }),
      });
      const body = (await response.json()) as { id?: string };
      if (response.status !== 201) {
        stopped = true;
        failure = new Error(`a write was refused with ${response.status}: ${JSON.stringify(body)}`);
        return;
      }
      acknowledged.push(body.id!);
    }
  };
  const running = Promise.all(Array.from({ length: writers }, writer));
  return {
    acknowledged,
    failed: () => failure,
    async stop() {
      stopped = true;
      await running;
      if (failure) throw failure;
    },
  };
}

async function cli(args: string[], env: Record<string, string | undefined>) {
  const child = spawnNode(['src/cli.ts', ...args], { env: { NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env } });
  const exit = await child.waitForExit(120_000);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

/** Every acknowledged id is in the restored copy, and every audit chain there verifies. */
async function assertRestoredCopy(db: Database, mustHave: string[]) {
  const { ids, chains } = await withSystem(db, async (tx) => ({
    ids: new Set((await tx.query<{ id: string }>('SELECT id::text AS id FROM patients')).rows.map((r) => r.id)),
    chains: (await tx.query<{ chain_key: string }>('SELECT DISTINCT chain_key FROM audit_seals')).rows.map((r) => r.chain_key),
  }));
  const missing = mustHave.filter((id) => !ids.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${mustHave.length} patients acknowledged before the backup are missing`);
  assert.ok(chains.length > 0, 'the restored copy has sealed audit chains');
  let checked = 0;
  for (const chain of chains) {
    const result = await verifyAuditChain(db, chain === 'system' ? null : chain);
    assert.equal(result.ok, true, `audit chain ${chain} broken at event ${result.brokenAt}`);
    checked += result.checked;
  }
  assert.ok(checked >= mustHave.length, `every acknowledged create left a sealed audit event (${checked} checked)`);
}

/** Load for a moment, then a backup while the writers keep going. */
async function backupUnderLoad(server: ServerHandle, out: string, env: Record<string, string | undefined>) {
  const load = startWriteLoad(server, await login(server));
  while (load.acknowledged.length < 40 && load.failed() === null) await new Promise((resolve) => setTimeout(resolve, 50));
  const beforeBackup = [...load.acknowledged];
  const backup = await cli(['backup', '--out', out], env);
  const duringBackup = load.acknowledged.length - beforeBackup.length;
  await load.stop();
  assert.equal(backup.code, 0, backup.stderr);
  assert.ok(duringBackup > 0, 'writes were acknowledged while the backup ran');
  return beforeBackup;
}

describe('backup and restore on PGlite (DATA_DIR)', () => {
  test('a backup taken under write load restores every acknowledged row with its audit chain verifying', async () => {
    // development: the server keeps generated secrets in DATA_DIR/.local-secrets.json, which no
    // backup may contain.
    const server = await startServer({ env: { NODE_ENV: 'development', MEDSPA_ADMIN_EMAIL: ADMIN.email, MEDSPA_ADMIN_PASSWORD: ADMIN.password } });
    const out = join(tempDir('medspa-backup-'), 'practice.backup');
    const beforeBackup = await backupUnderLoad(server, out, { DATA_DIR: server.dataDir });
    assert.equal((await server.stop()).code, 0, server.stderr());
    assert.match(server.stdout(), /backup taken over the backup socket/, 'the running server took the backup');

    const file = readFileSync(out);
    assert.equal(backupFormatOf(file), 'pglite');
    const secrets = JSON.parse(readFileSync(join(server.dataDir, '.local-secrets.json'), 'utf8')) as Record<string, string>;
    const tar = gunzipSync(file);
    assert.ok(Object.keys(secrets).length > 0);
    for (const [name, value] of Object.entries(secrets)) {
      assert.equal(tar.includes(value), false, `${name} must never be inside a backup`);
    }

    const target = join(tempDir('medspa-restore-'), 'data');
    const restored = await cli(['restore', out, '--data-dir', target], {});
    assert.equal(restored.code, 0, restored.stderr);
    const db = await openPglite({ dataDir: target });
    try {
      await assertRestoredCopy(db, beforeBackup);
    } finally {
      await db.close();
    }

    const again = await cli(['restore', out, '--data-dir', target], {});
    assert.equal(again.code, 1);
    assert.match(again.stderr, /refusing to restore into .*: it is not empty/);
  });

  test('a second server cannot open a DATA_DIR that a running server holds (it would corrupt it)', async () => {
    const first = await startServer();
    const second = await spawnServer({ dataDir: first.dataDir });
    const exit = await second.waitForExit(60_000);
    assert.equal(exit.code, 1);
    assert.match(second.stderr(), new RegExp(`another process \\(pid ${first.pid}\\) holds`));
    assert.equal(first.isRunning(), true);
  });

  test('without a running server the CLI backs up the directory itself', async () => {
    const server = await startServer();
    assert.equal((await server.stop()).code, 0);
    const out = join(tempDir('medspa-backup-'), 'offline.backup');
    const backup = await cli(['backup', '--out', out], { DATA_DIR: server.dataDir });
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, /from the data directory \(no server running\)/);
    const overwrite = await cli(['backup', '--out', out], { DATA_DIR: server.dataDir });
    assert.equal(overwrite.code, 1);
    assert.match(overwrite.stderr, /already exists: a backup never overwrites a file/);
  });
});

const url = process.env.DATABASE_URL;
describe('backup and restore on PostgreSQL (pg_dump / pg_restore)', { skip: url ? false : 'DATABASE_URL is not set' }, () => {
  const databaseUrl = (name: string) => {
    const target = new URL(url!);
    target.pathname = `/${name}`;
    return target.toString();
  };
  const created: string[] = [];
  const createDatabase = async () => {
    const name = `medspa_backup_${randomBytes(5).toString('hex')}`;
    const admin = await openPostgres({ connectionString: url!, poolSize: 1 });
    try {
      await admin.exec(`CREATE DATABASE ${name}`);
    } finally {
      await admin.close();
    }
    created.push(name);
    return databaseUrl(name);
  };
  after(async () => {
    const admin = await openPostgres({ connectionString: url!, poolSize: 1 });
    for (const name of created) await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  });

  test('a pg_dump backup taken under write load restores every acknowledged row with its audit chain verifying', async () => {
    const source = await createDatabase();
    const server = await startServer({ env: { DATABASE_URL: source, MEDSPA_ADMIN_EMAIL: ADMIN.email, MEDSPA_ADMIN_PASSWORD: ADMIN.password } });
    const out = join(tempDir('medspa-backup-'), 'practice.dump');
    const beforeBackup = await backupUnderLoad(server, out, { DATABASE_URL: source });
    assert.equal((await server.stop()).code, 0, server.stderr());
    assert.equal(backupFormatOf(readFileSync(out)), 'postgres');

    const target = await createDatabase();
    const restored = await cli(['restore', out, '--database-url', target], {});
    assert.equal(restored.code, 0, restored.stderr);
    const db = await openPostgres({ connectionString: target, poolSize: 2 });
    try {
      await assertRestoredCopy(db, beforeBackup);
    } finally {
      await db.close();
    }

    const again = await cli(['restore', out, '--database-url', target], {});
    assert.equal(again.code, 1);
    assert.match(again.stderr, /refusing to restore: the target database is not empty/);
  });

  test('missing client tools are named, with how to get them', async () => {
    const result = await cli(['backup', '--out', join(tempDir('medspa-backup-'), 'x.dump'), '--pg-bin', '/nonexistent'], { DATABASE_URL: url });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /pg_dump was not found in \/nonexistent: install the PostgreSQL client tools/);
  });
});

describe('backup rules', () => {
  test('pg_dump older than the server is refused before it runs, naming both versions', () => {
    assert.throws(() => checkDumpCompatible(14, 16), /pg_dump 14 cannot dump a PostgreSQL 16 server/);
    assert.throws(() => checkDumpCompatible(16, 14), /needs 15 or later/);
    assert.doesNotThrow(() => checkDumpCompatible(17, 15));
    assert.equal(parseToolMajor('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n'), 15);
  });

  test("a PGlite backup leaves out DATA_DIR's own dot files (local secrets) and keeps PostgreSQL's", () => {
    const entry = (name: string, body: string) => {
      const header = Buffer.alloc(512);
      header.write(name, 0);
      header.write(`${Buffer.byteLength(body).toString(8).padStart(11, '0')}\0`, 124);
      const data = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
      data.write(body);
      return Buffer.concat([header, data]);
    };
    const tar = Buffer.concat([entry('/.local-secrets.json', '{"ENCRYPTION_KEY":"k"}'), entry('/PG_VERSION', '18\n'), entry('/base/.keep', 'x'), Buffer.alloc(1024)]);
    const kept = withoutApplicationFiles(tar);
    assert.equal(kept.includes('ENCRYPTION_KEY'), false);
    assert.ok(kept.includes('/PG_VERSION'));
    assert.ok(kept.includes('/base/.keep'), 'only top-level dot files are the application\'s');
  });
});
