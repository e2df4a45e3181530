// The backup socket: how `npm run cli -- backup` gets a PGlite backup from a running server.
// PGlite is PostgreSQL inside one process: only the process that has DATA_DIR open may read it
// (a second process opening the directory would corrupt it), and PGlite's dumpDataDir() runs only
// there. So the process holding DATA_DIR listens on a Unix domain socket (mode 0600 in a 0700
// directory: its user only, never the network) and answers `dump` with the backup file's bytes.
// The socket cannot live inside DATA_DIR: PGlite's dump walks the directory and fails on a socket
// file. It lives in a private directory under XDG_RUNTIME_DIR (or the temporary directory), which
// also keeps its path under the 108-byte limit of Unix socket paths; DATA_DIR/.backup-socket.json
// names it and the process's pid. That file also claims the directory: a second server or CLI
// finding it with a live pid refuses to open DATA_DIR. See docs/operations.md#backups.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackupError, pgliteBackupFile } from './backup.js';
import type { Database } from './database.js';

export const BACKUP_CLAIM_FILE = '.backup-socket.json';
const REQUEST = 'dump\n';
/** A large practice's dump takes seconds; a stuck server must not hold the CLI forever. */
const DUMP_TIMEOUT_MS = 10 * 60_000;

interface Claim {
  pid: number;
  socket: string;
}

type Log = { info(obj: object, msg: string): void; error(obj: object, msg: string): void };

interface Header {
  ok: boolean;
  bytes?: number;
  message?: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The claim on DATA_DIR of a process still running, or null (none, or its process died). */
function liveClaim(dataDir: string): Claim | null {
  const file = join(dataDir, BACKUP_CLAIM_FILE);
  if (!existsSync(file)) return null;
  try {
    const claim = JSON.parse(readFileSync(file, 'utf8')) as Claim;
    return claim.pid !== process.pid && isAlive(claim.pid) ? claim : null;
  } catch {
    return null; // half-written by a process that died
  }
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', (error: NodeJS.ErrnoException) => reject(error));
  });
}

export interface BackupListener {
  /** Starts answering dumps from this database (until then a request is told to retry). */
  serve(db: Database, log: Log): void;
  close(): Promise<void>;
}

/**
 * Claims DATA_DIR for this process and listens on its backup socket. Throws when another live
 * process holds the directory; replaces the claim of a process that died.
 */
export async function listenForBackups(dataDir: string): Promise<BackupListener> {
  const held = liveClaim(dataDir);
  if (held) throw new BackupError(`another process (pid ${held.pid}) holds ${dataDir}: stop it first, or use another DATA_DIR`);
  const socketDir = mkdtempSync(join(process.env.XDG_RUNTIME_DIR || tmpdir(), 'medspa-backup-')); // 0700
  const path = join(socketDir, 'backup.sock');
  let db: Database | null = null;
  let log: Log | null = null;
  const server: Server = createServer((socket) => answer(socket));
  const answer = (socket: Socket) => {
    socket.setTimeout(DUMP_TIMEOUT_MS, () => socket.destroy());
    socket.once('data', (chunk) => {
      const reply = (header: Header, body?: Buffer) => socket.end(body ? Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), body]) : `${JSON.stringify(header)}\n`);
      if (chunk.toString('utf8') !== REQUEST) return reply({ ok: false, message: 'unknown request' });
      if (db?.dumpDataDir === undefined) return reply({ ok: false, message: 'the server is still starting; try again in a moment' });
      const started = Date.now();
      db.dumpDataDir().then(
        (tar) => {
          const file = pgliteBackupFile(tar);
          log?.info({ bytes: file.length, ms: Date.now() - started }, 'backup taken over the backup socket');
          reply({ ok: true, bytes: file.length }, file);
        },
        (error: unknown) => {
          log?.error({ err: error }, 'backup over the backup socket failed');
          reply({ ok: false, message: 'the server could not take the backup (see its log)' });
        },
      );
    });
    socket.on('error', () => socket.destroy());
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new BackupError(`cannot listen on the backup socket ${path}: ${error.code ?? error.message}`)));
    // Only the owner may connect: the socket hands out every patient's record.
    server.listen({ path, readableAll: false, writableAll: false }, () => resolve());
  });
  const claimFile = join(dataDir, BACKUP_CLAIM_FILE);
  writeFileSync(claimFile, JSON.stringify({ pid: process.pid, socket: path } satisfies Claim), { mode: 0o600 });
  return {
    serve(database, logger) {
      db = database;
      log = logger;
    },
    close: () =>
      new Promise((resolve) => {
        rmSync(claimFile, { force: true });
        server.close(() => {
          rmSync(socketDir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

/**
 * Asks the process holding DATA_DIR for a backup. Resolves to the backup file's bytes, or null
 * when no process listens (the caller may then open the directory itself).
 */
export async function requestBackup(dataDir: string): Promise<Buffer | null> {
  const claim = liveClaim(dataDir);
  if (claim === null) return null;
  let socket: Socket;
  try {
    socket = await connectTo(claim.socket);
  } catch (error) {
    // Never fall back to opening the directory: its process is alive and has it open.
    throw new BackupError(
      `the server holding ${dataDir} (pid ${claim.pid}) does not answer on its backup socket ${claim.socket} ` +
        `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); restart it and try again`,
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.setTimeout(DUMP_TIMEOUT_MS, () => socket.destroy(new Error('timed out')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.once('error', (error) => reject(new BackupError(`the backup over the server's socket failed: ${error.message}`)));
    socket.once('end', () => {
      const all = Buffer.concat(chunks);
      const newline = all.indexOf(0x0a);
      let header: Header;
      try {
        header = JSON.parse(all.subarray(0, newline).toString('utf8')) as Header;
      } catch {
        return reject(new BackupError('the server answered the backup request with something unreadable'));
      }
      if (!header.ok) return reject(new BackupError(`the server refused the backup: ${header.message ?? 'no reason given'}`));
      const body = all.subarray(newline + 1);
      if (body.length !== header.bytes) return reject(new BackupError(`the backup arrived incomplete (${body.length} of ${header.bytes} bytes)`));
      resolve(body);
    });
    socket.write(REQUEST);
  });
}
