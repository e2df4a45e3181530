// Two instances started at the same moment against one empty PostgreSQL database (issue 2,
// checked from outside): both become healthy, every migration is applied exactly once (the
// advisory lock), and the first start creates exactly one practice and one admin.
// Needs a real PostgreSQL: runs when DATABASE_URL is set (CI sets it), skips otherwise.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import pg from 'pg';
import { loadMigrations } from '../../src/db/migrate.js';
import { spawnServer, waitForHealthy } from '../helpers/process.js';

const baseUrl = process.env.DATABASE_URL;
const SKIP_REASON =
  'DATABASE_URL is not set: this test needs a real PostgreSQL server ' +
  '(e.g. DATABASE_URL=postgres://root@127.0.0.1:5432/test); CI always sets it';

if (process.env.CI && !baseUrl) throw new Error('CI must set DATABASE_URL so the two-instance test runs');

async function withClient<T>(connectionString: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

test('two instances started at once against one empty PostgreSQL database', { skip: baseUrl ? false : SKIP_REASON }, async () => {
  const dbName = `medspa_two_${randomBytes(5).toString('hex')}`;
  await withClient(baseUrl!, (client) => client.query(`CREATE DATABASE ${dbName}`));
  after(() =>
    withClient(baseUrl!, (client) => client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)).then(() => undefined),
  );
  const url = new URL(baseUrl!);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();

  const env = {
    DATABASE_URL: databaseUrl,
    MEDSPA_ADMIN_EMAIL: 'owner@two-instances.example',
    MEDSPA_ADMIN_PASSWORD: 'Two-Instances-Password-1',
  };
  // Spawned back to back: same code, same startup work, so they reach the migrations together.
  const servers = await Promise.all([spawnServer({ env }), spawnServer({ env })]);
  await Promise.all(servers.map((server) => waitForHealthy(server)));

  for (const server of servers) {
    const ready = await fetch(`${server.baseUrl}/health/ready`);
    assert.equal(ready.status, 200, await ready.text());
    assert.match(server.stdout(), /Storage: +PostgreSQL/);
  }
  const firstStarts = servers.filter((server) => /First start/.test(server.stdout()));
  assert.equal(firstStarts.length, 1, 'exactly one instance performs the first start');

  await withClient(databaseUrl, async (client) => {
    const migrations = await client.query<{ version: string; n: number }>(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
    assert.deepEqual(
      migrations.rows,
      loadMigrations().map((m) => ({ version: m.version, n: 1 })),
      'every migration recorded exactly once',
    );
    // The connecting role owns the tables; FORCE RLS applies to it, so read as medspa_system.
    await client.query('BEGIN');
    await client.query("SELECT set_config('role', 'medspa_system', true)");
    const practices = await client.query<{ id: string }>('SELECT id FROM practices');
    const users = await client.query<{ email: string; role: string; practice_id: string }>(
      'SELECT email, role, practice_id FROM users',
    );
    await client.query('COMMIT');
    assert.equal(practices.rows.length, 1, 'exactly one practice');
    assert.deepEqual(users.rows, [
      { email: 'owner@two-instances.example', role: 'ADMIN', practice_id: practices.rows[0]!.id },
    ]);
  });

  const exits = await Promise.all(servers.map((server) => server.stop('SIGTERM')));
  for (const [i, exit] of exits.entries()) {
    assert.deepEqual(exit, { code: 0, signal: null }, servers[i]!.stderr());
  }
});
