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
      now: Math.max(Date.now(), notBeforeSeconds * 1000),
    },
  );
}

async function insertRefreshToken(
  app: FastifyInstance,
  tx: Queryable,
  subject: SessionSubject,
  familyId: string,
  client: ClientInfo,
): Promise<string> {
  const refreshToken = generateRefreshToken();
  await tx.query(
    `INSERT INTO refresh_tokens (practice_id, user_id, family_id, token_hash, expires_at, ip, user_agent)
     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)`,
    [subject.practiceId, subject.id, familyId, hashToken(refreshToken), app.config.refreshTokenTtlSeconds, client.ip, client.userAgent],
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
  const refreshToken = await insertRefreshToken(app, tx, subject, familyId, client);
  const { token } = issueAccessToken(app, subject, notBeforeSeconds);
  return { accessToken: token, refreshToken, expiresIn: app.config.accessTokenTtlSeconds, familyId };
}

export interface StoredRefreshToken {
  id: string;
  practice_id: string;
  user_id: string;
  family_id: string;
  expired: boolean;
  rotated: boolean;
  revoked: boolean;
}

/** Locks the token's row for the rest of the transaction, so two refreshes can't both rotate it. */
export async function findRefreshTokenForUpdate(tx: Queryable, refreshToken: string): Promise<StoredRefreshToken | undefined> {
  const { rows } = await tx.query<StoredRefreshToken>(
    `SELECT id, practice_id, user_id, family_id, expires_at <= now() AS expired,
            rotated_at IS NOT NULL AS rotated, revoked_at IS NOT NULL AS revoked
       FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`,
    [hashToken(refreshToken)],
  );
  return rows[0];
}

export async function rotateRefreshToken(
  app: FastifyInstance,
  tx: Queryable,
  stored: StoredRefreshToken,
  subject: SessionSubject,
  client: ClientInfo,
): Promise<TokenPair> {
  await tx.query('UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1', [stored.id]);
  const refreshToken = await insertRefreshToken(app, tx, subject, stored.family_id, client);
  const { token } = issueAccessToken(app, subject);
  return { accessToken: token, refreshToken, expiresIn: app.config.accessTokenTtlSeconds };
}

export async function revokeFamily(tx: Queryable, familyId: string): Promise<number> {
  const { rowCount } = await tx.query(
    'UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL',
    [familyId],
  );
  return rowCount;
}

/** Every session of a user, except optionally the one being kept (password change). */
export async function revokeUserSessions(tx: Queryable, userId: string, exceptFamilyId: string | null = null): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE refresh_tokens SET revoked_at = now()
      WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $2`,
    [userId, exceptFamilyId],
  );
  return rowCount;
}

/**
 * Refuses every access token the user holds now (deactivation, password change). Tokens carry
 * whole-second iat, so the cut-off is the next second: nothing issued up to now survives.
 */
export async function cutOffAccessTokens(app: FastifyInstance, tx: Queryable, userId: string): Promise<number> {
  const cutoff = Math.floor(Date.now() / 1000) + 1;
  await tx.query('UPDATE users SET tokens_valid_after = to_timestamp($2) WHERE id = $1', [userId, cutoff]);
  await app.auth.revocations.revokeUserTokens(userId, cutoff);
  return cutoff;
}
