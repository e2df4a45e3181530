// The embedded database's first start, in a child process. PGlite's initdb grows its WebAssembly
// memory to about 650 MB, and neither WebAssembly memory nor the allocator's arenas shrink again:
// a server that ran initdb itself idled at ~740 MiB resident against ~235 MiB for one that
// reopens an existing data directory (npm run bench:memory). So the server lets a short-lived
// child create the cluster and apply the migrations, and then opens the directory like any
// later start. Costs one extra Node start (well under a second) on the very first start only.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openPglite } from './database.js';
import { migrate } from './migrate.js';

/** A PostgreSQL cluster exists in the directory (initdb writes PG_VERSION first). */
export function hasCluster(dataDir: string): boolean {
  return existsSync(join(dataDir, 'PG_VERSION'));
}

/**
 * Creates the cluster and applies the migrations in a child process when `dataDir` has none yet;
 * does nothing otherwise. The caller must already hold the directory (db/backup-socket.ts).
 */
export async function initialiseEmbeddedDataDir(dataDir: string): Promise<boolean> {
  if (hasCluster(dataDir)) return false;
  const script = fileURLToPath(import.meta.url);
  // execArgv carries tsx's loader under `npm run dev`; the built server needs nothing.
  const child = spawn(process.execPath, [...process.execArgv, script, dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => resolve(signal ? null : exitCode));
  });
  if (code !== 0) throw new Error(`creating the embedded database in ${dataDir} failed (exit ${code ?? 'by signal'}): ${stderr.trim().slice(-2000)}`);
  return true;
}

async function initialiseHere(dataDir: string): Promise<void> {
  const db = await openPglite({ dataDir });
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  initialiseHere(process.argv[2]!).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
