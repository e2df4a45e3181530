// Integration tests run against every database the machine offers: embedded PGlite always, and a
// real PostgreSQL when DATABASE_URL is set (CI sets it). Each opened database is private to its
// test file: a fresh in-memory PGlite, or a fresh schema on the PostgreSQL server.
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { openPglite, openPostgres, type Database, type DatabaseKind } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrate.js';

export interface TestDatabaseTarget {
  kind: DatabaseKind;
  /** Opens a fresh, migrated database; closed and dropped after the file's tests. */
  open(): Promise<Database>;
}

async function openScratchPostgres(url: string): Promise<Database> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = await openPostgres({ connectionString: url, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const db = await openPostgres({ connectionString: url, poolSize: 8, searchPath: `${schema},public` });
  return {
    ...db,
    async close() {
      await db.close();
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    },
  };
}

export function databaseTargets(): TestDatabaseTarget[] {
  const targets: TestDatabaseTarget[] = [
    { kind: 'pglite', open: () => openPglite({ dataDir: undefined }) },
  ];
  const url = process.env.DATABASE_URL;
  if (url) targets.push({ kind: 'postgres', open: () => openScratchPostgres(url) });
  if (process.env.CI && !url) throw new Error('CI must set DATABASE_URL so the PostgreSQL tests run');
  return targets;
}

/** Opens and migrates a database for this test file, closing it when the file ends. */
export async function migratedDatabase(target: TestDatabaseTarget): Promise<Database> {
  const db = await target.open();
  after(() => db.close());
  await migrate(db);
  return db;
}
