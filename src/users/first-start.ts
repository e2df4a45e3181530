// First start on an empty database: one practice and its ADMIN, so the API is usable at once.
// Credentials come from MEDSPA_ADMIN_EMAIL / MEDSPA_ADMIN_PASSWORD, or a generated password is
// returned for the caller to print once (it is never logged or stored in clear).
import { randomBytes } from 'node:crypto';
import { recordAudit } from '../audit/audit.js';
import { hashPassword } from '../auth/passwords.js';
import type { Database, Queryable } from '../db/database.js';
import { withSystem } from '../db/scope.js';

export interface NewPractice {
  name: string;
  timeZone: string;
}

export interface NewUser {
  email: string;
  password: string;
  role: 'ADMIN' | 'PRACTITIONER' | 'STAFF' | 'MANAGER';
  firstName?: string;
  lastName?: string;
}

export async function insertPractice(tx: Queryable, practice: NewPractice): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    'INSERT INTO practices (name, time_zone) VALUES ($1, $2) RETURNING id',
    [practice.name, practice.timeZone],
  );
  return rows[0]!.id;
}

export async function insertUser(tx: Queryable, practiceId: string, user: NewUser): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    `INSERT INTO users (practice_id, email, password_hash, role, first_name, last_name)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [
      practiceId,
      user.email.trim().toLowerCase(),
      await hashPassword(user.password),
      user.role,
      user.firstName ?? '',
      user.lastName ?? '',
    ],
  );
  return rows[0]!.id;
}

export interface FirstStartResult {
  practiceId: string;
  adminEmail: string;
  /** Set only when the password was generated here and must be shown to the operator once. */
  generatedPassword: string | null;
}

export interface FirstStartOptions {
  practiceName: string;
  timeZone: string;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
}

/** Creates the first practice and admin if there are no practices; null when already set up. */
export async function ensureFirstPractice(db: Database, options: FirstStartOptions): Promise<FirstStartResult | null> {
  return withSystem(db, async (tx) => {
    // Serialise concurrent first starts: the loser waits, then sees the winner's practice.
    await tx.query('SELECT pg_advisory_xact_lock($1)', [0x6669727374]);
    const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM practices');
    if ((rows[0]?.n ?? 0) > 0) return null;
    const generatedPassword = options.adminPassword === undefined ? randomBytes(15).toString('base64url') : null;
    const adminEmail = (options.adminEmail ?? 'admin@medspa.local').toLowerCase();
    const practiceId = await insertPractice(tx, { name: options.practiceName, timeZone: options.timeZone });
    const userId = await insertUser(tx, practiceId, {
      email: adminEmail,
      password: options.adminPassword ?? generatedPassword!,
      role: 'ADMIN',
      firstName: 'Practice',
      lastName: 'Administrator',
    });
    await recordAudit(tx, {
      practiceId,
      actorType: 'system',
      actorId: null,
      action: 'practice.bootstrap',
      resourceType: 'user',
      resourceIds: [userId],
      outcome: 'success',
      details: { role: 'ADMIN', passwordGenerated: generatedPassword !== null },
    });
    return { practiceId, adminEmail, generatedPassword };
  });
}
