// Backups and restore (HIPAA 164.308(a)(7), contingency plan): docs/operations.md#backups.
//   PGlite (DATA_DIR): a gzipped tar of the data directory, taken by the process that holds it
//     (the running server, asked over its backup socket, or this CLI when no server runs).
//   PostgreSQL (DATABASE_URL): pg_dump's custom format (one consistent snapshot), pg_restore.
// A backup holds PHI but never the keys: DATA_DIR's own files (.local-secrets.json, the socket)
// are left out, and ENCRYPTION_KEY / JWT_SECRET stay in the configuration.
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { openPglite, openPostgres, type Database } from './database.js';

/** A refusal the operator can act on (bad target, missing tool): printed as it is. */
export class BackupError extends Error {}

export type BackupFormat = 'pglite' | 'postgres';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const PG_DUMP_MAGIC = Buffer.from('PGDMP');

/** What a backup file is, from its first bytes; null for anything else. */
export function backupFormatOf(head: Buffer): BackupFormat | null {
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'pglite';
  if (head.subarray(0, 5).equals(PG_DUMP_MAGIC)) return 'postgres';
  return null;
}

// ---- PGlite: a tar of the data directory ------------------------------------------------------

const TAR_BLOCK = 512;

function tarField(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length).toString('utf8');
  const end = raw.indexOf('\0');
  return end === -1 ? raw : raw.slice(0, end);
}

/**
 * The tar without the files this application keeps at the top of DATA_DIR (their names start
 * with a dot: the generated local secrets, the backup socket). PostgreSQL's own files never do.
 */
export function withoutApplicationFiles(tar: Buffer): Buffer {
  const kept: Buffer[] = [];
  let offset = 0;
  while (offset + TAR_BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + TAR_BLOCK);
    if (header.every((byte) => byte === 0)) break;
    const name = `${tarField(header, 345, 155)}${tarField(header, 0, 100)}`;
    const size = Number.parseInt(tarField(header, 124, 12).trim() || '0', 8);
    const entryLength = TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (!/^\/?\.[^/]*$/.test(name)) kept.push(tar.subarray(offset, offset + entryLength));
    offset += entryLength;
  }
  kept.push(Buffer.alloc(TAR_BLOCK * 2)); // the end-of-archive marker
  return Buffer.concat(kept);
}

/** The backup file's bytes for a PGlite data directory tar. */
export function pgliteBackupFile(dataDirTar: Buffer): Buffer {
  return gzipSync(withoutApplicationFiles(dataDirTar));
}

/** Takes the backup in this process, which must be the only one holding the directory. */
export async function dumpPgliteDirectory(dataDir: string): Promise<Buffer> {
  if (!existsSync(join(dataDir, 'PG_VERSION'))) throw new BackupError(`${dataDir} holds no database (no PG_VERSION): nothing to back up`);
  const db = await openPglite({ dataDir });
  try {
    return pgliteBackupFile(await db.dumpDataDir!());
  } finally {
    await db.close();
  }
}

/** A directory is an empty target when it is missing or has nothing but DATA_DIR's own dot files. */
function refuseNonEmptyDirectory(dataDir: string): void {
  if (!existsSync(dataDir)) return;
  const entries = readdirSync(dataDir).filter((name) => !name.startsWith('.'));
  if (entries.length > 0) {
    throw new BackupError(
      `refusing to restore into ${dataDir}: it is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}). ` +
        'Restore into a new, empty directory and point DATA_DIR at it.',
    );
  }
}

export async function restorePglite(file: Buffer, dataDir: string): Promise<void> {
  refuseNonEmptyDirectory(dataDir);
  let tar: Buffer;
  try {
    tar = gunzipSync(file);
  } catch {
    throw new BackupError('the backup file is damaged (not a complete gzip stream)');
  }
  const db = await openPglite({ dataDir, loadDataDir: new Blob([tar]) });
  try {
    await db.query('SELECT count(*) FROM schema_migrations');
  } catch (error) {
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw new BackupError(`the restored directory does not open as this application's database: ${(error as Error).message}`);
  }
  await db.close();
}

// ---- PostgreSQL: pg_dump / pg_restore ---------------------------------------------------------

const run = promisify(execFile);
/** The oldest PostgreSQL the SQL is written for (DESIGN: 15 and later). */
const OLDEST_SERVER_MAJOR = 15;

export interface PgToolOptions {
  /** Where pg_dump and pg_restore are; the PATH when unset. */
  pgBin?: string | undefined;
}

const toolPath = (tool: 'pg_dump' | 'pg_restore', options: PgToolOptions) => (options.pgBin ? join(options.pgBin, tool) : tool);

/** The major version of a client tool, or a BackupError saying how to install it. */
export async function toolMajor(tool: 'pg_dump' | 'pg_restore', options: PgToolOptions): Promise<number> {
  let output: string;
  try {
    output = (await run(toolPath(tool, options), ['--version'])).stdout;
  } catch {
    throw new BackupError(
      `${tool} was not found${options.pgBin ? ` in ${options.pgBin}` : ' on the PATH'}: install the PostgreSQL client tools ` +
        '(Debian: apt-get install postgresql-client) of the same or a newer major version than the server, or pass --pg-bin DIR',
    );
  }
  return parseToolMajor(output);
}

/** "pg_dump (PostgreSQL) 15.20 (Debian …)" → 15 */
export function parseToolMajor(versionOutput: string): number {
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(versionOutput);
  if (!match) throw new BackupError(`cannot read the version from "${versionOutput.trim()}"`);
  return Number(match[1]);
}

async function serverMajor(db: Database): Promise<number> {
  const { rows } = await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Math.floor(Number(rows[0]!.v) / 10_000);
}

/** pg_dump refuses a server newer than itself; say so before it starts, with both versions. */
export function checkDumpCompatible(client: number, server: number): void {
  if (server < OLDEST_SERVER_MAJOR) throw new BackupError(`the server is PostgreSQL ${server}; this application needs ${OLDEST_SERVER_MAJOR} or later`);
  if (client < server) {
    throw new BackupError(`pg_dump ${client} cannot dump a PostgreSQL ${server} server: install pg_dump ${server} or newer (or pass --pg-bin DIR)`);
  }
}

async function withPostgres<T>(url: string, work: (db: Database) => Promise<T>): Promise<T> {
  let db: Database;
  try {
    db = await openPostgres({ connectionString: url, poolSize: 1, connectTimeoutMs: 5_000, applicationName: 'medspasync-pro backup' });
    await db.ping();
  } catch (error) {
    throw new BackupError(`cannot connect to the database: ${(error as Error).message}`);
  }
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

async function runTool(tool: 'pg_dump' | 'pg_restore', args: string[], options: PgToolOptions): Promise<void> {
  try {
    await run(toolPath(tool, options), args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new BackupError(`${tool} failed: ${stderr || (error as Error).message}`);
  }
}

/** pg_dump --format=custom into `partialFile` (created 0600 by the caller). */
export async function dumpPostgres(url: string, partialFile: string, options: PgToolOptions): Promise<void> {
  const client = await toolMajor('pg_dump', options);
  await withPostgres(url, async (db) => checkDumpCompatible(client, await serverMajor(db)));
  // One snapshot for the whole dump (pg_dump's own transaction, REPEATABLE READ): rows committed
  // while it runs are not in it, and nothing is half in it.
  await runTool('pg_dump', ['--format=custom', '--compress=6', '--no-password', `--file=${partialFile}`, `--dbname=${url}`], options);
}

/** The major version of the pg_dump that wrote a custom-format archive (pg_restore --list). */
async function archiveDumperMajor(file: string, options: PgToolOptions): Promise<number | null> {
  const { stdout } = await run(toolPath('pg_restore', options), ['--list', file], { maxBuffer: 64 * 1024 * 1024 });
  const match = /Dumped by pg_dump version:\s+(\d+)/.exec(stdout);
  return match ? Number(match[1]) : null;
}

const USER_RELATIONS = `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/**
 * The cluster-wide roles the dump grants to (migration 001), created when the target server is a
 * new one: pg_dump copies a database, not its cluster's roles.
 */
async function ensureApplicationRoles(db: Database): Promise<void> {
  for (const role of ['medspa_app', 'medspa_system']) {
    const { rows } = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (rows.length === 0) await db.exec(`CREATE ROLE ${role} NOLOGIN`);
  }
}

/**
 * The audit sealer ranges events by transaction id (migration 007): the restored server must be
 * past every id the backup holds, or new events would land inside sealed ranges. A restore on
 * the same cluster always is; a new cluster may not be.
 */
async function checkTransactionCounter(db: Database): Promise<void> {
  const { rows } = await db.query<{ behind: boolean; restored: string; current: string }>(
    `SELECT greatest((SELECT max(xact_to) FROM audit_seals), (SELECT max(xact_id) FROM audit_events)) >= pg_current_xact_id() AS behind,
            greatest((SELECT max(xact_to) FROM audit_seals), (SELECT max(xact_id) FROM audit_events))::text AS restored,
            pg_current_xact_id()::text AS current`,
  );
  const row = rows[0]!;
  if (row.behind) {
    const epoch = (BigInt(row.restored) >> 32n) + 1n;
    throw new BackupError(
      `restored, but do not start the API on it yet: this server's transaction counter (${row.current}) is behind the backup's ` +
        `(${row.restored}), and new audit events would fall inside sealed ranges. Stop the server, run ` +
        `pg_resetwal --epoch=${epoch} on its data directory, start it, and run the restore check again (docs/operations.md#backups).`,
    );
  }
}

export async function restorePostgres(file: string, url: string, options: PgToolOptions): Promise<void> {
  const client = await toolMajor('pg_restore', options);
  const dumper = await archiveDumperMajor(file, options).catch(() => {
    throw new BackupError('the backup file is damaged or not a pg_dump custom-format archive');
  });
  if (dumper !== null && dumper > client) {
    throw new BackupError(`the backup was made by pg_dump ${dumper}; pg_restore ${client} cannot read it: install pg_restore ${dumper} or newer`);
  }
  await withPostgres(url, async (db) => {
    const major = await serverMajor(db);
    if (major < OLDEST_SERVER_MAJOR) throw new BackupError(`the target server is PostgreSQL ${major}; this application needs ${OLDEST_SERVER_MAJOR} or later`);
    const { rows } = await db.query<{ n: number }>(USER_RELATIONS);
    if (rows[0]!.n > 0) {
      throw new BackupError('refusing to restore: the target database is not empty (it has tables). Create a new, empty database and restore into it.');
    }
    await ensureApplicationRoles(db);
  });
  // One transaction: a restore that fails half-way leaves the database as empty as it was.
  await runTool('pg_restore', ['--exit-on-error', '--single-transaction', '--no-owner', '--no-password', `--dbname=${url}`, file], options);
  await withPostgres(url, checkTransactionCounter);
}

// ---- Files ------------------------------------------------------------------------------------

/**
 * Writes a backup without ever leaving a partial file under its name: into FILE.partial (0600,
 * it holds PHI), renamed when complete. An existing FILE is never overwritten.
 */
export async function writeBackupFile(out: string, produce: (partialFile: string) => Promise<void>): Promise<void> {
  if (existsSync(out)) throw new BackupError(`${out} already exists: a backup never overwrites a file; choose a new name`);
  const partial = `${out}.partial`;
  closeSync(openSync(partial, 'w', 0o600));
  try {
    await produce(partial);
    renameSync(partial, out);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
}

/** What FILE is, from its first bytes. */
export function backupFormatOfFile(file: string): BackupFormat {
  const head = Buffer.alloc(8);
  try {
    const fd = openSync(file, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new BackupError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const format = backupFormatOf(head);
  if (format === null) throw new BackupError(`${file} is not a backup of this application (neither a PGlite data directory nor a pg_dump archive)`);
  return format;
}
