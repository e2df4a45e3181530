// The embedded database's first start runs initdb and the migrations in a child process, so the
// server never carries initdb's WebAssembly memory (src/db/initialise-embedded.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openPglite } from '../../src/db/database.js';
import { hasCluster, initialiseEmbeddedDataDir } from '../../src/db/initialise-embedded.js';
import { loadMigrations } from '../../src/db/migrate.js';

describe('first start of the embedded database', () => {
  const root = mkdtempSync(join(tmpdir(), 'medspa-initialise-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('an empty directory gets a cluster with every migration applied, by a child process', async () => {
    const dataDir = join(root, 'fresh');
    const memoryBefore = process.memoryUsage().external;
    assert.equal(await initialiseEmbeddedDataDir(dataDir), true);
    assert.ok(hasCluster(dataDir));
    // initdb grows PGlite's memory to hundreds of MiB; none of it is in this process.
    assert.ok(process.memoryUsage().external - memoryBefore < 64 * 1024 * 1024, 'initdb ran in this process');
    const db = await openPglite({ dataDir });
    try {
      const { rows } = await db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(rows.map((row) => row.version), loadMigrations().map((migration) => migration.version));
    } finally {
      await db.close();
    }
  });

  test('a directory that already holds a cluster is left alone', async () => {
    assert.equal(await initialiseEmbeddedDataDir(join(root, 'fresh')), false);
  });

  test('a failure in the child stops the start with its reason, not a half-made directory in silence', async () => {
    const notADirectory = join(root, 'a-file');
    writeFileSync(notADirectory, 'not a data directory');
    await assert.rejects(initialiseEmbeddedDataDir(notADirectory), /creating the embedded database in .*a-file failed \(exit 1\)/);
  });
});
