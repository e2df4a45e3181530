// Integration tests run against every database the machine offers: embedded PGlite always, and a
// real PostgreSQL when DATABASE_URL is set (CI sets it). Each opened database is private to its
// test file: a fresh in-memory PGlite, or a fresh schema on the PostgreSQL server.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { btree_gist } from '@electric-sql/pglite/contrib/btree_gist';
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

const pgliteManifest = new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url);
const pgliteVersion = (JSON.parse(readFileSync(pgliteManifest, 'utf8')) as { version: string }).version;

/**
 * A freshly initialised, empty PGlite cluster, made once per machine and PGlite version. initdb
 * costs 2-4 s per database here and loading this copy about 0.3 s; with a hundred scratch databases
 * in the suite that is minutes. It holds no migrations: a database opened from it is exactly as new
 * as one that ran initdb itself.
 */
async function initialisedCluster(): Promise<Blob> {
  const path = join(tmpdir(), `medspa-pglite-cluster-${pgliteVersion}.tar`);
  if (!existsSync(path)) {
    const fresh = await PGlite.create({ extensions: { btree_gist } });
    const dump = await fresh.dumpDataDir('none');
    await fresh.close();
    // Test files run in parallel processes: each writes its own file and renames it into place.
    const partial = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(partial, Buffer.from(await dump.arrayBuffer()));
    await rename(partial, path);
  }
  return new Blob([await readFile(path)]);
}

/** A fresh, empty in-memory PGlite database (unmigrated). */
export async function openScratchPglite(): Promise<Database> {
  return openPglite({ dataDir: undefined, loadDataDir: await initialisedCluster() });
}

export function databaseTargets(): TestDatabaseTarget[] {
  const targets: TestDatabaseTarget[] = [
    { kind: 'pglite', open: openScratchPglite },
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
