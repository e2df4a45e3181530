// Operator CLI: work on the database without the HTTP server running (first setup, a locked-out
// admin, an integration key). Every change is audited with actor "system" and details.via "cli".
//   npm run cli -- create-practice --name "Glow Med Spa" [--time-zone America/Chicago]
//   npm run cli -- create-user --practice <id> --email a@b.co --role ADMIN [--password …] [--first-name … --last-name …]
//   npm run cli -- reset-password --email a@b.co [--password …]
//   npm run cli -- reset-mfa --email a@b.co            (a lost authenticator)
//   npm run cli -- create-api-key --practice <id> --name "POS export" --permissions read:patients,read:services
//   npm run cli -- list-practices
//   npm run cli -- rotate-data-key --practice <id> [--batch-size 500]   (online; resumable: run it again after an interruption)
//   npm run cli -- purge-audit [--dry-run]               (audit events past AUDIT_RETENTION_YEARS)
//   npm run cli -- verify-audit-export FILE              (offline: needs no database)
//   npm run cli -- backup --out FILE [--pg-bin DIR]      (while the API serves; docs/operations.md#backups)
//   npm run cli -- restore FILE [--data-dir DIR | --database-url URL] [--pg-bin DIR]   (into an empty target)
import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { recordAudit } from './audit/audit.js';
import { verifyAuditExport } from './audit/export.js';
import { purgeExpiredAudit } from './audit/retention.js';
import { checkPasswordPolicy, hashPassword } from './auth/passwords.js';
import { isKnownGrant, isRole, ROLES } from './auth/rbac.js';
import { advanceTokenCutoff } from './auth/sessions.js';
import { apiKeyHint, generateApiKey, hashToken } from './auth/tokens.js';
import { normaliseEmail } from './auth/user-model.js';
import { loadConfig, type Config } from './config.js';
import { openDatabase, type Database, type Queryable } from './db/database.js';
import { BackupError, backupFormatOfFile, dumpPgliteDirectory, dumpPostgres, restorePglite, restorePostgres, writeBackupFile } from './db/backup.js';
import { listenForBackups, requestBackup } from './db/backup-socket.js';
import { migrate } from './db/migrate.js';
import { PhiKeyring } from './db/field-encryption.js';
import { rotateDataKey } from './patients/key-rotation.js';
import { withSystem } from './db/scope.js';
import { isUuid } from './http/pagination.js';
import { insertPractice, insertUser } from './users/first-start.js';

class UsageError extends Error {}

type Options = Record<string, string | undefined>;

function required(options: Options, name: string): string {
  const value = options[name];
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function passwordOrGenerated(options: Options, context: { email: string }): { password: string; generated: boolean } {
  if (options.password === undefined) return { password: randomBytes(15).toString('base64url'), generated: true };
  const problems = checkPasswordPolicy(options.password, context);
  if (problems.length > 0) throw new UsageError(`--password: ${problems.map((p) => p.message).join('; ')}`);
  return { password: options.password, generated: false };
}

const audit = (tx: Queryable, practiceId: string | null, action: string, resourceType: string, ids: string[], details: object = {}) =>
  recordAudit(tx, { practiceId, actorType: 'system', actorId: null, action, resourceType, resourceIds: ids, outcome: 'success', details: { via: 'cli', ...details } });

async function requirePractice(tx: Queryable, practiceId: string) {
  if (!isUuid(practiceId) || (await tx.query('SELECT 1 FROM practices WHERE id = $1', [practiceId])).rows.length === 0) {
    throw new UsageError(`no practice with id ${practiceId} (see list-practices)`);
  }
}

const commands: Record<string, (db: Database, options: Options, config: Config) => Promise<string>> = {
  async 'create-practice'(db, options) {
    const name = required(options, 'name');
    const timeZone = options['time-zone'] ?? 'America/New_York';
    try {
      new Intl.DateTimeFormat('en-US', { timeZone });
    } catch {
      throw new UsageError(`--time-zone: "${timeZone}" is not an IANA time zone`);
    }
    const id = await withSystem(db, async (tx) => {
      const practiceId = await insertPractice(tx, { name, timeZone });
      await audit(tx, practiceId, 'practice.create', 'practice', [practiceId]);
      return practiceId;
    });
    return `Created practice ${id} (${name}, ${timeZone})`;
  },

  async 'rotate-data-key'(db, options, config) {
    const practiceId = required(options, 'practice');
    await withSystem(db, (tx) => requirePractice(tx, practiceId));
    const keyring = new PhiKeyring(db, {
      masterSecret: config.phi.masterKey,
      previousSecrets: config.phi.previousMasterKeys,
      cacheSeconds: config.phi.dataKeyCacheSeconds,
      openedCacheSize: 0,
    });
    await keyring.start();
    const batchSize = options['batch-size'] === undefined ? 500 : Number(options['batch-size']);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new UsageError('--batch-size: a whole number from 1 to 10000');
    const result = await rotateDataKey(db, keyring, practiceId, {
      batchSize,
      onBatch: (progress) => void process.stdout.write(`  ${progress.moved} rows re-encrypted under data key version ${progress.version}\n`),
    });
    await withSystem(db, (tx) => audit(tx, practiceId, 'practice.data_key_rotated', 'practice', [practiceId], { version: result.version, rows: result.moved, resumed: result.resumed }));
    return `${result.resumed ? 'Resumed the rotation to' : 'Rotated to'} data key version ${result.version}: ${result.moved} patient rows re-encrypted; every row is now under it.`;
  },

  async 'list-practices'(db) {
    const { rows } = await withSystem(db, (tx) =>
      tx.query<{ id: string; name: string; time_zone: string; users: number }>(
        `SELECT p.id, p.name, p.time_zone, (SELECT count(*)::int FROM users u WHERE u.practice_id = p.id) AS users
           FROM practices p ORDER BY p.created_at`,
      ),
    );
    return rows.map((r) => `${r.id}  ${r.name}  (${r.time_zone}, ${r.users} users)`).join('\n') || 'No practices yet';
  },

  async 'create-user'(db, options) {
    const practiceId = required(options, 'practice');
    const email = normaliseEmail(required(options, 'email'));
    const role = required(options, 'role');
    if (!isRole(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
    const { password, generated } = passwordOrGenerated(options, { email });
    const id = await withSystem(db, async (tx) => {
      await requirePractice(tx, practiceId);
      if ((await tx.query('SELECT 1 FROM users WHERE email = $1', [email])).rows.length > 0) {
        throw new UsageError(`a user with email ${email} already exists`);
      }
      const userId = await insertUser(tx, practiceId, {
        email,
        password,
        role,
        firstName: options['first-name'] ?? '',
        lastName: options['last-name'] ?? '',
      });
      await audit(tx, practiceId, 'user.create', 'user', [userId], { role });
      return userId;
    });
    return `Created ${role} ${email} (${id})${generated ? `\nPassword (shown once): ${password}` : ''}`;
  },

  async 'reset-password'(db, options) {
    const email = normaliseEmail(required(options, 'email'));
    const { password, generated } = passwordOrGenerated(options, { email });
    const hash = await hashPassword(password);
    await withSystem(db, async (tx) => {
      const { rows } = await tx.query<{ id: string; practice_id: string }>(
        `UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL, sessions_valid_after = now(),
                updated_at = now()
          WHERE email = $1 RETURNING id, practice_id`,
        [email, hash],
      );
      const user = rows[0];
      if (user === undefined) throw new UsageError(`no user with email ${email}`);
      await advanceTokenCutoff(tx, user.id);
      await tx.query('UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL', [user.id]);
      await audit(tx, user.practice_id, 'auth.password_reset', 'user', [user.id]);
    });
    return `Password reset for ${email}; the account is unlocked and its sessions ended (running servers refuse its tokens within 5 seconds)${generated ? `\nNew password (shown once): ${password}` : ''}`;
  },

  async 'reset-mfa'(db, options) {
    const email = normaliseEmail(required(options, 'email'));
    await withSystem(db, async (tx) => {
      const { rows } = await tx.query<{ id: string; practice_id: string }>(
        `UPDATE users SET mfa_enabled = false, mfa_secret = NULL, mfa_pending_secret = NULL, mfa_last_step = NULL,
                updated_at = now()
          WHERE email = $1 RETURNING id, practice_id`,
        [email],
      );
      const user = rows[0];
      if (user === undefined) throw new UsageError(`no user with email ${email}`);
      await tx.query('DELETE FROM mfa_recovery_codes WHERE user_id = $1', [user.id]);
      await audit(tx, user.practice_id, 'auth.mfa_reset', 'user', [user.id]);
    });
    return `MFA turned off for ${email} (a lost device); they can enrol again after logging in with their password`;
  },

  async 'create-api-key'(db, options) {
    const practiceId = required(options, 'practice');
    const name = required(options, 'name');
    const permissions = required(options, 'permissions').split(',').map((p) => p.trim()).filter(Boolean);
    const bad = permissions.filter((p) => !isKnownGrant(p));
    if (bad.length > 0) throw new UsageError(`--permissions: not known permissions: ${bad.join(', ')}`);
    const key = generateApiKey();
    const id = await withSystem(db, async (tx) => {
      await requirePractice(tx, practiceId);
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO api_keys (practice_id, name, key_hash, key_hint, permissions) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
        [practiceId, name, hashToken(key), apiKeyHint(key), permissions],
      );
      await audit(tx, practiceId, 'api_key.create', 'api_key', [rows[0]!.id], { permissions });
      return rows[0]!.id;
    });
    return `Created API key ${id} (${permissions.join(', ')})\nKey (shown once): ${key}`;
  },

  async 'purge-audit'(db, options, config) {
    const report = await purgeExpiredAudit(db, { retentionYears: config.audit.retentionYears, dryRun: options['dry-run'] === 'true' });
    const verb = options['dry-run'] === 'true' ? 'Would purge' : 'Purged';
    const lines = report.chains.map((c) => `${verb} ${c.chainKey}: seals ${c.fromSeq}-${c.throughSeq}, ${c.events} events`);
    return [`Retention ${config.audit.retentionYears} years: records sealed before ${report.cutoff}`, ...lines, ...(lines.length === 0 ? ['Nothing past retention'] : [])].join('\n');
  },
};

/** Checks an audit export file offline: 0 when it verifies, 1 with the first bad line named. */
async function verifyExportFile(file: string | undefined): Promise<number> {
  if (file === undefined) throw new UsageError('verify-audit-export needs the export file: npm run cli -- verify-audit-export FILE');
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  const result = await verifyAuditExport(lines);
  if (!result.ok) {
    process.stderr.write(`${file}: line ${result.line}: ${result.message}\n`);
    return 1;
  }
  process.stdout.write(
    `${file}: ok, ${result.seals} seals and ${result.events} events verified` +
      (result.head ? `; last seal ${result.head.seq} ${result.head.hash} (compare with the live chain)` : '') + '\n',
  );
  return 0;
}

// Backup and restore need only where the data is, read here rather than through loadConfig():
// outside production loadConfig() generates local secrets into DATA_DIR, which would make an
// empty restore target non-empty, and a restore must not mint keys of its own.
const storageFromEnv = () => ({ databaseUrl: process.env.DATABASE_URL || undefined, dataDir: resolve(process.env.DATA_DIR || './data') });

function backupOptions(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: 'string' }, 'data-dir': { type: 'string' }, 'database-url': { type: 'string' }, 'pg-bin': { type: 'string' } },
    strict: true,
  });
}

/** A PGlite backup from the server holding DATA_DIR, or from the directory itself when none does. */
async function pgliteBackup(dataDir: string): Promise<{ bytes: Buffer; via: string }> {
  const served = await requestBackup(dataDir);
  if (served !== null) return { bytes: served, via: 'the running server' };
  const claim = await listenForBackups(dataDir); // no server may open the directory meanwhile
  try {
    return { bytes: await dumpPgliteDirectory(dataDir), via: 'the data directory (no server running)' };
  } finally {
    await claim.close();
  }
}

async function backup(args: string[]): Promise<number> {
  const { values } = backupOptions(args);
  if (!values.out) throw new UsageError('backup needs --out FILE');
  const out = resolve(values.out);
  const { databaseUrl, dataDir } = storageFromEnv();
  let via = 'pg_dump (custom format, one snapshot)';
  await writeBackupFile(out, async (partial) => {
    if (databaseUrl) return dumpPostgres(databaseUrl, partial, { pgBin: values['pg-bin'] });
    const taken = await pgliteBackup(dataDir);
    via = taken.via;
    writeFileSync(partial, taken.bytes);
  });
  process.stdout.write(`Backup written to ${out} from ${via}. It holds PHI: store it encrypted, and keep ENCRYPTION_KEY apart from it.\n`);
  return 0;
}

async function restore(args: string[]): Promise<number> {
  const { values, positionals } = backupOptions(args);
  const file = positionals[0];
  if (file === undefined) throw new UsageError('restore needs the backup file: npm run cli -- restore FILE [--data-dir DIR | --database-url URL]');
  const format = backupFormatOfFile(file);
  const storage = storageFromEnv();
  const databaseUrl = values['database-url'] ?? (values['data-dir'] ? undefined : storage.databaseUrl);
  if (format === 'postgres') {
    if (!databaseUrl) throw new UsageError(`${file} is a PostgreSQL backup: give the empty target database with --database-url URL (or DATABASE_URL)`);
    await restorePostgres(file, databaseUrl, { pgBin: values['pg-bin'] });
    process.stdout.write(`Restored ${file} into the database. Start the API with DATABASE_URL pointing at it and the original ENCRYPTION_KEY.\n`);
    return 0;
  }
  if (databaseUrl) throw new UsageError(`${file} is an embedded (PGlite) backup: restore it into a data directory with --data-dir DIR (unset DATABASE_URL)`);
  const dataDir = resolve(values['data-dir'] ?? storage.dataDir);
  await restorePglite(readFileSync(file), dataDir);
  process.stdout.write(`Restored ${file} into ${dataDir}. Start the API with DATA_DIR=${dataDir} and the original ENCRYPTION_KEY.\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'verify-audit-export') return verifyExportFile(rest[0]);
  if (command === 'backup') return backup(rest);
  if (command === 'restore') return restore(rest);
  const run = command === undefined ? undefined : commands[command];
  if (run === undefined) {
    process.stderr.write(`Usage: npm run cli -- <${[...Object.keys(commands), 'verify-audit-export', 'backup', 'restore'].join('|')}> [--option value …]\n`);
    return 64;
  }
  const { values: parsed } = parseArgs({
    args: rest,
    options: {
      ...Object.fromEntries(
        ['name', 'time-zone', 'practice', 'email', 'role', 'password', 'first-name', 'last-name', 'permissions', 'batch-size'].map((o) => [o, { type: 'string' as const }]),
      ),
      'dry-run': { type: 'boolean' as const },
    },
    strict: true,
  });
  const values = { ...parsed, 'dry-run': parsed['dry-run'] ? 'true' : undefined };
  const config = loadConfig();
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(db);
    process.stdout.write(`${await run(db, values as Options, config)}\n`);
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const plain = error instanceof UsageError || error instanceof TypeError || error instanceof BackupError;
    process.stderr.write(`${plain ? '' : 'Failed: '}${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof UsageError ? 64 : 1);
  },
);
