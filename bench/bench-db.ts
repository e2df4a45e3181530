// The database a benchmark runs on: PGlite in memory, or, with DATABASE_URL, a schema of its own
// on that PostgreSQL server (dropped afterwards), so a benchmark never touches anyone's tables.
import { randomBytes } from 'node:crypto';
import { openPglite, openPostgres, type Database } from '../src/db/database.js';

export async function openBenchDatabase(): Promise<{ db: Database; label: string; drop(): Promise<void> }> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const db = await openPglite({ dataDir: undefined });
    return { db, label: 'PGlite (embedded)', drop: () => db.close() };
  }
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await openPostgres({ connectionString: url, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const db = await openPostgres({ connectionString: url, poolSize: 10, searchPath: `${schema},public` });
  return { db, label: 'PostgreSQL', drop: async () => { await db.close(); await admin.exec(`DROP SCHEMA ${schema} CASCADE`); await admin.close(); } };
}
