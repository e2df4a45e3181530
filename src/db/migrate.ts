// Versioned SQL migrations. Each file in ./migrations runs once, in name order, in its own
// transaction, and is recorded with a checksum. A transaction-scoped advisory lock taken before
// reading what is applied makes concurrent starts safe: the second instance waits, then sees the
// first one's work and applies nothing twice.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// An arbitrary constant shared by every instance of this service ("medspa" in ASCII).
const MIGRATION_LOCK_KEY = 0x6d6564737061;

export interface Migration {
  version: string;
  sql: string;
  checksum: string;
}

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((name) => /^\d{3}_[a-z0-9_]+\.sql$/.test(name))
    .sort()
    .map((name) => {
      const sql = readFileSync(`${dir}/${name}`, 'utf8');
      return { version: name.replace(/\.sql$/, ''), sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

export class MigrationChecksumError extends Error {}

/** Applies every pending migration; returns the versions applied by this call. */
export async function migrate(db: Database, migrations: Migration[] = loadMigrations()): Promise<string[]> {
  const applied: string[] = [];
  for (;;) {
    const version = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version text PRIMARY KEY,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await tx.query<{ version: string; checksum: string }>(
        'SELECT version, checksum FROM schema_migrations',
      );
      const done = new Map(rows.map((row) => [row.version, row.checksum]));
      for (const migration of migrations) {
        const checksum = done.get(migration.version);
        if (checksum !== undefined && checksum !== migration.checksum) {
          throw new MigrationChecksumError(
            `migration ${migration.version} was changed after it was applied; add a new migration instead`,
          );
        }
      }
      const next = migrations.find((migration) => !done.has(migration.version));
      if (next === undefined) return undefined;
      await tx.exec(next.sql);
      await tx.query('INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)', [
        next.version,
        next.checksum,
      ]);
      return next.version;
    });
    if (version === undefined) return applied;
    applied.push(version);
  }
}
