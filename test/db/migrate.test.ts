import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { openPostgres } from '../../src/db/database.js';
import { loadMigrations, migrate, MigrationChecksumError } from '../../src/db/migrate.js';
import { databaseTargets } from '../helpers/databases.js';

for (const target of databaseTargets()) {
  describe(`migrations on ${target.kind}`, async () => {
    const db = await target.open();
    after(() => db.close());

    test('applies every migration once, in order, and records it', async () => {
      const applied = await migrate(db);
      assert.deepEqual(applied, loadMigrations().map((m) => m.version));
      const { rows } = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(rows.map((r) => r.version), applied);
    });

    test('a second run applies nothing', async () => {
      assert.deepEqual(await migrate(db), []);
    });

    test('refuses to start when an applied migration was edited afterwards', async () => {
      const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'changed' } : m));
      await assert.rejects(migrate(db, edited), MigrationChecksumError);
    });

    test('a failing migration leaves nothing half-applied', async () => {
      const broken = [
        ...loadMigrations(),
        { version: '999_broken', sql: 'CREATE TABLE half_done (id int); SELECT * FROM no_such_table;', checksum: 'x' },
      ];
      await assert.rejects(migrate(db, broken));
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'half_done'",
      );
      assert.equal(rows[0]?.n, 0);
      const recorded = await db.query("SELECT 1 FROM schema_migrations WHERE version = '999_broken'");
      assert.equal(recorded.rows.length, 0);
    });
  });
}

const url = process.env.DATABASE_URL;
describe('concurrent starts on one PostgreSQL', { skip: url ? false : 'DATABASE_URL not set' }, () => {
  test('two instances migrating the same empty schema at once apply each migration exactly once', async () => {
    const schema = `t_race_${Date.now().toString(36)}`;
    const admin = await openPostgres({ connectionString: url!, poolSize: 1 });
    await admin.exec(`CREATE SCHEMA ${schema}`);
    const a = await openPostgres({ connectionString: url!, poolSize: 2, searchPath: `${schema},public` });
    const b = await openPostgres({ connectionString: url!, poolSize: 2, searchPath: `${schema},public` });
    try {
      const [appliedA, appliedB] = await Promise.all([migrate(a), migrate(b)]);
      const all = loadMigrations().map((m) => m.version);
      assert.deepEqual([...appliedA, ...appliedB].sort(), all);
      const { rows } = await a.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
      assert.equal(rows[0]?.n, all.length);
    } finally {
      await a.close();
      await b.close();
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    }
  });
});
