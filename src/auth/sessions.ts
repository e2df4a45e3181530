// Sessions: an access token (short-lived JWT, blueprint 2.1 claims) plus a refresh token (opaque,
// stored hashed, single use). Each login starts a family; each refresh rotates within it; a
// rotated token presented again revokes the family, because only a thief would still hold it.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../db/database.js';
import { signAccessToken } from './jwt.js';
import { permissionsForRole, type Role } from './rbac.js';
import { generateRefreshToken, hashToken } from './tokens.js';

export interface SessionSubject {
  id: string;
  email: string;
  role: Role;
  practiceId: string;
  /**
   * The user's access-token cut-off (users.tokens_valid_after, epoch seconds), if any. It can be up
   * to a second ahead (cutOffAccessTokens): a token issued before it would be refused at once, so
   * one issued for this subject is dated no earlier.
   */
  tokensValidAfter?: number | null;
}

/** The cut-off as a column, next to USER_COLUMNS, for building a SessionSubject. */
export const TOKENS_VALID_AFTER_COLUMN = 'extract(epoch FROM tokens_valid_after)::float8 AS tokens_valid_after';

export function sessionSubject(row: { id: string; email: string; role: Role; practice_id: string; tokens_valid_after: number | null }): SessionSubject {
  return { id: row.id, email: row.email, role: row.role, practiceId: row.practice_id, tokensValidAfter: row.tokens_valid_after };
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}

/** `notBeforeSeconds`: issue at that second at the earliest (a session that must outlive a cut-off). */
export function issueAccessToken(app: FastifyInstance, subject: SessionSubject, notBeforeSeconds = 0) {
  return signAccessToken(
    {
      sub: subject.id,
      email: subject.email,
      role: subject.role,
      practiceId: subject.practiceId,
      permissions: permissionsForRole(subject.role),
    },
    {
      secret: app.auth.signingSecret,
      kid: app.auth.signingKid,
      issuer: app.config.jwtIssuer,
      audience: app.config.jwtAudience,
      ttlSeconds: app.config.accessTokenTtlSeconds,
      now: Math.max(Date.now(), notBeforeSeconds * 1000, (subject.tokensValidAfter ?? 0) * 1000),
    },
  );
}

async function insertRefreshToken(
  app: FastifyInstance,
  tx: Queryable,
  subject: SessionSubject,
  family: { id: string; startedAt: Date | null },
  client: ClientInfo,
): Promise<string> {
  const refreshToken = generateRefreshToken();
  await tx.query(
    `INSERT INTO refresh_tokens (practice_id, user_id, family_id, family_started_at, token_hash, expires_at, ip, user_agent)
     VALUES ($1, $2, $3, coalesce($4, now()), $5, now() + make_interval(secs => $6), $7, $8)`,
    [
      subject.practiceId,
      subject.id,
      family.id,
      family.startedAt,
      hashToken(refreshToken),
      app.config.refreshTokenTtlSeconds,
      client.ip,
      client.userAgent,
    ],
  );
  return refreshToken;
}

/** A new session (login): a new family. */
export async function startSession(
  app: FastifyInstance,
  tx: Queryable,
  subject: SessionSubject,
  client: ClientInfo,
  notBeforeSeconds = 0,
): Promise<TokenPair & { familyId: string }> {
  const familyId = randomUUID();
  const refreshToken = await insertRefreshToken(app, tx, subject, { id: familyId, startedAt: null }, client);
  const { token } = issueAccessToken(app, subject, notBeforeSeconds);
  return { accessToken: token, refreshToken, expiresIn: app.config.accessTokenTtlSeconds, familyId };
}

export interface StoredRefreshToken {
  id: string;
  practice_id: string;
  user_id: string;
  family_id: string;
  family_started_at: Date;
  /** When this token was issued: the session's last login or refresh. */
  issued_at: Date;
  expired: boolean;
  rotated: boolean;
  revoked: boolean;
}

/**
 * Finds a refresh token and locks, in this order, what every session change locks: the user's
 * row, then the token's own row (so two refreshes can't both rotate it).
 *
 * The user's row is locked FOR NO KEY UPDATE, the strength of the UPDATE users that a refresh may
 * still have to run: a rotated token presented again ends the session and cuts off the user's
 * access tokens (cutOffAccessTokens). Taking it FOR SHARE and upgrading later deadlocked: of five
 * concurrent refreshes with one token, the second held the family and waited for the others'
 * shared locks on the user's row, while they waited for the family (PostgreSQL broke the cycle
 * after deadlock_timeout, a 409 a second later). Held exclusively from the start, a user's refreshes
 * simply queue (each is a few short statements), and password changes, logouts everywhere and
 * deactivations, which UPDATE the row first, queue with them. The row lock covers the whole
 * family, so no separate family lock is needed.
 */
export async function lockRefreshToken(tx: Queryable, refreshToken: string): Promise<StoredRefreshToken | undefined> {
  const hash = hashToken(refreshToken);
  const { rows: found } = await tx.query<{ user_id: string }>('SELECT user_id FROM refresh_tokens WHERE token_hash = $1', [hash]);
  if (found[0] === undefined) return undefined;
  await tx.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [found[0].user_id]);
  const { rows } = await tx.query<StoredRefreshToken>(
    `SELECT id, practice_id, user_id, family_id, family_started_at, issued_at, expires_at <= now() AS expired,
            rotated_at IS NOT NULL AS rotated, revoked_at IS NOT NULL AS revoked
       FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`,
    [hash],
  );
  return rows[0];
}

export type SessionLimit = 'idle' | 'max_lifetime';

/**
 * Automatic logoff (45 CFR 164.312(a)(2)(iii)), judged on the token presented, which is the newest
 * of its family when it is not rotated: idle when the last login or refresh (its issue) is longer
 * ago than the idle timeout, too old when the login itself is longer ago than the lifetime.
 */
export function sessionLimitReached(
  token: Pick<StoredRefreshToken, 'issued_at' | 'family_started_at'>,
  nowMs: number,
  limits: { sessionIdleTimeoutSeconds: number; sessionMaxLifetimeSeconds: number },
): SessionLimit | null {
  if (nowMs - token.family_started_at.getTime() > limits.sessionMaxLifetimeSeconds * 1000) return 'max_lifetime';
  if (nowMs - token.issued_at.getTime() > limits.sessionIdleTimeoutSeconds * 1000) return 'idle';
  return null;
}

export async function rotateRefreshToken(
  app: FastifyInstance,
  tx: Queryable,
  stored: StoredRefreshToken,
  subject: SessionSubject,
  client: ClientInfo,
): Promise<TokenPair> {
  await tx.query('UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1', [stored.id]);
  const refreshToken = await insertRefreshToken(app, tx, subject, { id: stored.family_id, startedAt: stored.family_started_at }, client);
  const { token } = issueAccessToken(app, subject);
  return { accessToken: token, refreshToken, expiresIn: app.config.accessTokenTtlSeconds };
}

/** Ends one login. The caller holds the user's row (lockRefreshToken). */
export async function revokeFamily(tx: Queryable, familyId: string): Promise<number> {
  const { rowCount } = await tx.query(
    'UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL',
    [familyId],
  );
  return rowCount;
}

/**
 * Every session of a user ends: sessions_valid_after moves to now (this transaction's start, so a
 * session started later in the same transaction, as a password change does, stays valid), which
 * also catches a refresh committing concurrently; then the stored tokens are revoked.
 */
export async function revokeUserSessions(tx: Queryable, userId: string): Promise<number> {
  await tx.query('UPDATE users SET sessions_valid_after = now() WHERE id = $1', [userId]);
  const { rowCount } = await tx.query(
    'UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL',
    [userId],
  );
  return rowCount;
}

/**
 * Moves the user's access-token cut-off past every token they hold, in the database only (the
 * CLI's path; running servers pick it up within seconds), and returns it (epoch seconds).
 *
 * Tokens carry whole-second iat, so the cut-off is the next whole second. It also always moves
 * forward by at least a second: a token issued since the last cut-off is dated at it (sessionSubject),
 * so a second cut-off in the same second must land after it, or that token would survive.
 */
export async function advanceTokenCutoff(tx: Queryable, userId: string): Promise<number> {
  const { rows } = await tx.query<{ cutoff: number }>(
    `UPDATE users SET tokens_valid_after = greatest(to_timestamp($2), tokens_valid_after + interval '1 second')
      WHERE id = $1 RETURNING extract(epoch FROM tokens_valid_after)::float8 AS cutoff`,
    [userId, Math.floor(Date.now() / 1000) + 1],
  );
  return rows[0]?.cutoff ?? Math.floor(Date.now() / 1000) + 1;
}

/** Refuses every access token the user holds now (deactivation, password change, logout everywhere), on every instance. */
export async function cutOffAccessTokens(app: FastifyInstance, tx: Queryable, userId: string): Promise<number> {
  const cutoff = await advanceTokenCutoff(tx, userId);
  await app.auth.revocations.revokeUserTokens(userId, cutoff);
  return cutoff;
}
