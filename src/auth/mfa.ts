// TOTP MFA (blueprint 2.3): SHA-256, 30 s steps, a window of 2 steps either side. Secrets are
// sealed at rest and bound to their user; a code's time step is recorded when accepted, so the
// same code (or an older one) is refused afterwards. Recovery codes are single use.
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../db/database.js';
import { createSecretBox, deriveKey, type SecretBox } from './secret-box.js';
import { generateRecoveryCodes, hashRecoveryCode, normalizeRecoveryCode } from './tokens.js';
import { base32Encode, generateSecret, otpauthUri, TOTP_DEFAULTS, verifyTotp, type TotpAlgorithm } from './totp.js';

export const MFA_WINDOW = 2;

const boxes = new WeakMap<FastifyInstance, { box: SecretBox; recoveryKey: Buffer }>();
function keysFor(app: FastifyInstance) {
  let keys = boxes.get(app);
  if (keys === undefined) {
    keys = {
      box: createSecretBox(app.config.encryptionKey),
      recoveryKey: deriveKey(app.config.encryptionKey, 'medspasync-pro recovery-codes'),
    };
    boxes.set(app, keys);
  }
  return keys;
}

export interface Enrolment {
  secret: string;
  otpauthUri: string;
  algorithm: TotpAlgorithm;
  digits: number;
  period: number;
}

/** A fresh secret, stored as pending until one valid code confirms the app computes the same codes. */
export async function beginEnrolment(
  app: FastifyInstance,
  tx: Queryable,
  user: { id: string; email: string },
  algorithm: TotpAlgorithm,
): Promise<Enrolment> {
  const secret = generateSecret(algorithm);
  await tx.query('UPDATE users SET mfa_pending_secret = $2, mfa_algorithm = $3 WHERE id = $1', [
    user.id,
    keysFor(app).box.seal(secret, user.id),
    algorithm,
  ]);
  const base32 = base32Encode(secret);
  return {
    secret: base32,
    otpauthUri: otpauthUri({ accountName: user.email, secret, algorithm, digits: TOTP_DEFAULTS.digits, period: TOTP_DEFAULTS.period }),
    algorithm,
    digits: TOTP_DEFAULTS.digits,
    period: TOTP_DEFAULTS.period,
  };
}

export interface MfaState {
  id: string;
  practice_id: string;
  mfa_enabled: boolean;
  mfa_secret: string | null;
  mfa_pending_secret: string | null;
  mfa_algorithm: TotpAlgorithm;
  mfa_last_step: number | null;
}

export const MFA_STATE_COLUMNS = 'id, practice_id, mfa_enabled, mfa_secret, mfa_pending_secret, mfa_algorithm, mfa_last_step';

/**
 * Checks a TOTP code against a sealed secret and claims its time step atomically: of two
 * concurrent requests with the same code, only one can move mfa_last_step forward.
 */
async function acceptTotp(app: FastifyInstance, tx: Queryable, user: MfaState, sealed: string, code: string): Promise<boolean> {
  const secret = keysFor(app).box.open(sealed, user.id);
  const step = verifyTotp(secret, code, {
    algorithm: user.mfa_algorithm,
    window: MFA_WINDOW,
    lastUsedStep: user.mfa_last_step ?? undefined,
  });
  if (step === null) return false;
  const { rowCount } = await tx.query(
    'UPDATE users SET mfa_last_step = $2 WHERE id = $1 AND (mfa_last_step IS NULL OR mfa_last_step < $2)',
    [user.id, step],
  );
  return rowCount === 1;
}

async function consumeRecoveryCode(app: FastifyInstance, tx: Queryable, userId: string, code: string): Promise<boolean> {
  const hash = hashRecoveryCode(code, keysFor(app).recoveryKey);
  if (hash === null) return false;
  const { rowCount } = await tx.query(
    'UPDATE mfa_recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL',
    [userId, hash],
  );
  return rowCount === 1;
}

export type SecondFactor = 'totp' | 'recovery_code';

/** Verifies an enabled user's second factor: a TOTP code, or one of their recovery codes. */
export async function verifySecondFactor(
  app: FastifyInstance,
  tx: Queryable,
  user: MfaState,
  code: string,
): Promise<SecondFactor | null> {
  if (!user.mfa_enabled || user.mfa_secret === null) return null;
  if (/^\d{6,8}$/.test(code)) return (await acceptTotp(app, tx, user, user.mfa_secret, code)) ? 'totp' : null;
  if (normalizeRecoveryCode(code) !== null) {
    return (await consumeRecoveryCode(app, tx, user.id, code)) ? 'recovery_code' : null;
  }
  return null;
}

/** Confirms a pending enrolment with one valid code; returns the recovery codes (shown once). */
export async function completeEnrolment(app: FastifyInstance, tx: Queryable, user: MfaState, code: string): Promise<string[] | null> {
  if (user.mfa_pending_secret === null || !/^\d{6,8}$/.test(code)) return null;
  if (!(await acceptTotp(app, tx, user, user.mfa_pending_secret, code))) return null;
  await tx.query(
    'UPDATE users SET mfa_enabled = true, mfa_secret = mfa_pending_secret, mfa_pending_secret = NULL WHERE id = $1',
    [user.id],
  );
  await tx.query('DELETE FROM mfa_recovery_codes WHERE user_id = $1', [user.id]);
  const codes = generateRecoveryCodes();
  for (const recoveryCode of codes) {
    await tx.query('INSERT INTO mfa_recovery_codes (practice_id, user_id, code_hash) VALUES ($1, $2, $3)', [
      user.practice_id,
      user.id,
      hashRecoveryCode(recoveryCode, keysFor(app).recoveryKey),
    ]);
  }
  return codes;
}

export async function disableMfa(tx: Queryable, userId: string): Promise<void> {
  await tx.query(
    `UPDATE users SET mfa_enabled = false, mfa_secret = NULL, mfa_pending_secret = NULL, mfa_last_step = NULL
      WHERE id = $1`,
    [userId],
  );
  await tx.query('DELETE FROM mfa_recovery_codes WHERE user_id = $1', [userId]);
}
