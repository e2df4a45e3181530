// /v1/auth: login, refresh, logout, password change, MFA. Every outcome, good or bad, is audited.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { recordAudit, requestOrigin, type AuditEvent } from '../audit/audit.js';
import type { Queryable } from '../db/database.js';
import { withPractice, withSystem } from '../db/scope.js';
import { AppError, conflict, unauthorized, unprocessable, validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { auditActor, principalOf } from './guard.js';
import {
  beginEnrolment,
  completeEnrolment,
  disableMfa,
  MFA_STATE_COLUMNS,
  verifySecondFactor,
  type MfaState,
} from './mfa.js';
import { checkPasswordPolicy, hashPassword, isShorterThanAnyPassword, PASSWORD_MIN_LENGTH, verifyPassword, verifyPasswordOrDummy } from './passwords.js';
import { persistTokenRevocation } from './revocation.js';
import {
  LoginBody,
  LogoutBody,
  MfaDisableBody,
  MfaSetupBody,
  MfaSetupResponse,
  MfaTokenBody,
  MfaVerifyResponse,
  PasswordChangeBody,
  RefreshBody,
  TokenResponse,
} from './schemas.js';
import {
  cutOffAccessTokens,
  lockRefreshToken,
  revokeFamily,
  revokeUserSessions,
  rotateRefreshToken,
  sessionLimitReached,
  sessionSubject,
  startSession,
  type SessionLimit,
  type StoredRefreshToken,
  TOKENS_VALID_AFTER_COLUMN,
  type ClientInfo,
} from './sessions.js';
import { isRefreshTokenFormat } from './tokens.js';
import { normaliseEmail, toUser, USER_COLUMNS, type UserRow } from './user-model.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Per-account login throttle (rate limiting); throws a 429 AppError when the account's budget is spent. */
    loginAttemptGuard?: (request: FastifyRequest, email: string) => Promise<void>;
  }
}

interface LoginRow extends UserRow, MfaState {
  password_hash: string;
  failed_logins: number;
  locked_seconds_left: number | null;
}

/** Whether the account is locked out now (users.locked_until, set by recordFailedAttempt). */
const LOCKED_COLUMN = 'coalesce(locked_until > now(), false) AS locked';

const invalidCredentials = () => new AppError('INVALID_CREDENTIALS', 401, 'Invalid email or password');
const invalidMfaCode = () => unprocessable('INVALID_MFA_TOKEN', 'Invalid or already used MFA code', [{ field: 'token', message: 'is not a valid code' }]);
const sessionExpired = (limit: SessionLimit) =>
  new AppError(
    'SESSION_EXPIRED',
    401,
    limit === 'idle' ? 'The session was idle for too long and has ended; log in again' : 'The session reached its maximum lifetime and has ended; log in again',
  );
const invalidRefreshToken = () => new AppError('INVALID_REFRESH_TOKEN', 401, 'Invalid or expired refresh token');

function clientOf(request: FastifyRequest): ClientInfo {
  const origin = requestOrigin(request);
  return { ip: origin.ip ?? null, userAgent: origin.userAgent ?? null };
}


async function auditAuth(tx: Queryable, request: FastifyRequest, event: Omit<AuditEvent, 'ip' | 'userAgent' | 'requestId' | 'correlationId'>) {
  await recordAudit(tx, { ...requestOrigin(request), resourceType: 'user', ...event });
}

// Slowing guessers down is the per-account rate limit's job (5 attempts per 15 minutes for any
// email, known or not). The lock below only applies to real accounts, so it answers exactly like
// a wrong password: a delay or a distinct "locked" answer would tell a guesser the account exists.

export async function authRoutes(app: FastifyInstance): Promise<void> {
  const { db, config } = app;

  /** A login refused before the password mattered (locked, deactivated): audited, not counted. */
  async function auditRefusedLogin(request: FastifyRequest, user: LoginRow, reason: string) {
    await withSystem(db, (tx) =>
      auditAuth(tx, request, {
        practiceId: user.practice_id,
        actorType: 'user',
        actorId: user.id,
        action: 'auth.login',
        resourceIds: [user.id],
        outcome: 'denied',
        details: { reason },
      }),
    );
  }

  /**
   * Counts a failed credential (a wrong password or MFA code, on login or on a signed-in person's
   * own routes) in one statement, no read-then-write race, and locks the account at the threshold.
   * One counter for every route, so guesses can't be spread over several to escape it.
   */
  async function recordFailedAttempt(tx: Queryable, request: FastifyRequest, user: { id: string; practice_id: string }, action: string, reason: string) {
    const { rows } = await tx.query<{ failed_logins: number; locked: boolean }>(
      `UPDATE users SET failed_logins = failed_logins + 1,
              locked_until = CASE WHEN failed_logins + 1 >= $2
                                  THEN now() + make_interval(mins => $3) ELSE locked_until END
        WHERE id = $1
        RETURNING failed_logins, locked_until > now() AS locked`,
      [user.id, config.loginLockoutThreshold, config.loginLockoutMinutes],
    );
    const row = rows[0]!;
    await auditAuth(tx, request, {
      practiceId: user.practice_id,
      actorType: 'user',
      actorId: user.id,
      action,
      resourceIds: [user.id],
      outcome: 'failure',
      details: { reason, consecutiveFailures: row.failed_logins, locked: row.locked === true },
    });
    if (row.locked && row.failed_logins === config.loginLockoutThreshold) {
      await auditAuth(tx, request, {
        practiceId: user.practice_id,
        actorType: 'system',
        actorId: null,
        action: 'auth.account_locked',
        resourceIds: [user.id],
        outcome: 'success',
        details: { minutes: config.loginLockoutMinutes },
      });
    }
  }

  const recordFailedLogin = (request: FastifyRequest, user: LoginRow, reason: string) =>
    withSystem(db, (tx) => recordFailedAttempt(tx, request, user, 'auth.login', reason));

  /** A refresh ends the login its token belongs to (reuse, automatic logoff), audited as refused. */
  async function endFamily(tx: Queryable, request: FastifyRequest, stored: StoredRefreshToken, action: string, details: Record<string, unknown> = {}) {
    const revoked = await revokeFamily(tx, stored.family_id);
    await auditAuth(tx, request, {
      practiceId: stored.practice_id,
      actorType: 'user',
      actorId: stored.user_id,
      action,
      resourceIds: [stored.user_id],
      outcome: 'denied',
      details: { familyId: stored.family_id, tokensRevoked: revoked, ...details },
    });
  }

  /**
   * A signed-in person's own route checks a credential (password, MFA code): it spends one of the
   * account's attempts from the same per-account budget as login (once per request, 429 when
   * spent), so a stolen access token can't guess from rotating addresses up to the per-IP limit.
   */
  async function spendAccountAttempt(request: FastifyRequest): Promise<void> {
    if (request.loginAccountKey == null) await app.loginAttemptGuard?.(request, principalOf(request).email!);
  }

  /** A wrong credential on a signed-in person's route: counted toward the lock, or, while locked, audited as denied. */
  async function refuseAccountAttempt(request: FastifyRequest, locked: boolean, action: string, reason: string) {
    const principal = principalOf(request);
    await withPractice(db, principal.practiceId, (tx) =>
      locked
        ? auditAuth(tx, request, { ...auditActor(principal), action, resourceIds: [principal.id], outcome: 'denied', details: { reason: 'locked' } })
        : recordFailedAttempt(tx, request, { id: principal.id, practice_id: principal.practiceId }, action, reason),
    );
  }

  /**
   * The signed-in person proves they know their password again (changing it, enrolling or
   * disabling MFA): an access token alone, stolen or left on a shared screen, must not be enough.
   * A wrong one is counted like a failed login, audited and answered 422 naming the field; while
   * the account is locked even the right one gets that answer, as login does.
   */
  async function confirmPassword(request: FastifyRequest, password: string, action: string, field: string): Promise<UserRow> {
    const principal = principalOf(request);
    await spendAccountAttempt(request);
    const user = await withPractice(db, principal.practiceId, async (tx) => {
      const { rows } = await tx.query<UserRow & { password_hash: string; locked: boolean }>(
        `SELECT ${USER_COLUMNS}, password_hash, ${LOCKED_COLUMN} FROM users WHERE id = $1`,
        [principal.id],
      );
      return rows[0];
    });
    if (user === undefined) throw unauthorized();
    if (user.locked || !(await verifyPassword(user.password_hash, password))) {
      await refuseAccountAttempt(request, user.locked, action, 'bad_password');
      throw new AppError('INVALID_CREDENTIALS', 422, 'The password is not correct', [{ field, message: 'is not correct' }]);
    }
    return user;
  }

  app.post(
    '/auth/login',
    {
      config: { public: true },
      schema: {
        tags: ['Authentication'],
        summary: 'User authentication',
        security: [],
        body: LoginBody,
        response: { 200: TokenResponse, ...errorResponses(400, 401, 429) },
      },
    },
    async (request) => {
      const body = request.body as { email: string; password: string; mfaToken?: string };
      if (isShorterThanAnyPassword(body.password)) {
        throw validationError([{ field: 'password', message: `must be at least ${PASSWORD_MIN_LENGTH} characters` }]);
      }
      const email = normaliseEmail(body.email);
      await app.loginAttemptGuard?.(request, email);
      const user = await withSystem(db, async (tx) => {
        const { rows } = await tx.query<LoginRow>(
          `SELECT ${USER_COLUMNS}, ${MFA_STATE_COLUMNS}, password_hash, failed_logins,
                  ceil(extract(epoch FROM locked_until - now()))::int AS locked_seconds_left
             FROM users WHERE email = $1`,
          [email],
        );
        return rows[0];
      });
      // The hash is checked even for unknown emails, so both cost the same time.
      const passwordOk = await verifyPasswordOrDummy(user?.password_hash, body.password);

      if (user === undefined) {
        await withSystem(db, (tx) =>
          auditAuth(tx, request, {
            practiceId: null,
            actorType: 'anonymous',
            actorId: null,
            action: 'auth.login',
            outcome: 'failure',
            details: { reason: 'unknown_account' },
          }),
        );
        throw invalidCredentials();
      }
      if (user.locked_seconds_left !== null && user.locked_seconds_left > 0) {
        await auditRefusedLogin(request, user, 'locked');
        throw invalidCredentials();
      }
      if (!passwordOk) {
        await recordFailedLogin(request, user, 'bad_password');
        throw invalidCredentials();
      }
      if (!user.active) {
        await auditRefusedLogin(request, user, 'inactive');
        throw invalidCredentials();
      }
      let secondFactor: string | null = null;
      if (user.mfa_enabled) {
        if (body.mfaToken === undefined || body.mfaToken.trim() === '') {
          throw new AppError('MFA_REQUIRED', 401, 'This account requires an MFA code: send mfaToken');
        }
        secondFactor = await withSystem(db, (tx) => verifySecondFactor(app, tx, user, body.mfaToken!.trim()));
        if (secondFactor === null) {
          await recordFailedLogin(request, user, 'bad_mfa_token');
          throw new AppError('INVALID_MFA_TOKEN', 401, 'Invalid or already used MFA code');
        }
      }

      const tokens = await withSystem(db, async (tx) => {
        // Only if nothing changed since the password was checked: a password change or
        // deactivation committed in between must not be outrun by this login.
        const { rows } = await tx.query<UserRow & { tokens_valid_after: number | null }>(
          `UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now()
            WHERE id = $1 AND active AND password_hash = $2 RETURNING ${USER_COLUMNS}, ${TOKENS_VALID_AFTER_COLUMN}`,
          [user.id, user.password_hash],
        );
        const fresh = rows[0];
        if (fresh === undefined) return null;
        const session = await startSession(app, tx, sessionSubject(fresh), clientOf(request));
        await auditAuth(tx, request, {
          practiceId: fresh.practice_id,
          actorType: 'user',
          actorId: fresh.id,
          action: 'auth.login',
          resourceIds: [fresh.id],
          outcome: 'success',
          details: { mfa: secondFactor ?? 'none' },
        });
        return { ...session, user: toUser(fresh) };
      });
      if (tokens === null) throw invalidCredentials();
      return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: tokens.expiresIn, user: tokens.user };
    },
  );

  app.post(
    '/auth/refresh',
    {
      config: { public: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Refresh access token',
        description:
          'Exchanges a refresh token for a new token pair. Refresh tokens are single use: presenting one that was already exchanged revokes every token of that login.',
        security: [],
        body: RefreshBody,
        response: { 200: TokenResponse, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { refreshToken } = request.body as { refreshToken: string };
      if (!isRefreshTokenFormat(refreshToken)) throw invalidRefreshToken();
      const outcome = await withSystem(db, async (tx) => {
        const stored = await lockRefreshToken(tx, refreshToken);
        if (stored === undefined) return { error: invalidRefreshToken() };
        if (stored.rotated) {
          // Already exchanged once: someone else holds this chain. End the whole login, and the
          // access tokens already issued from it: which of the user's access tokens came from this
          // family isn't recorded, so all of them are cut off (other sessions refresh and go on).
          await endFamily(tx, request, stored, 'auth.refresh_reuse_detected');
          await cutOffAccessTokens(app, tx, stored.user_id);
          return { error: new AppError('REFRESH_TOKEN_REUSED', 401, 'Refresh token already used; the session was ended') };
        }
        if (stored.revoked || stored.expired) return { error: invalidRefreshToken() };
        const limit = sessionLimitReached(stored, app.auth.now(), config);
        if (limit !== null) {
          // Ended for good, so that a later refresh is refused even if the limits are raised.
          await endFamily(tx, request, stored, 'auth.session_expired', { reason: limit });
          return { error: sessionExpired(limit) };
        }
        const { rows } = await tx.query<UserRow & { sessions_ended: boolean; tokens_valid_after: number | null }>(
          `SELECT ${USER_COLUMNS}, ${TOKENS_VALID_AFTER_COLUMN}, sessions_valid_after > $2 AS sessions_ended FROM users WHERE id = $1`,
          [stored.user_id, stored.family_started_at],
        );
        const user = rows[0];
        // A password change or logout-everywhere after this login began ends it, even if a
        // rotation of this family committed just before.
        if (user === undefined || !user.active || user.sessions_ended) return { error: invalidRefreshToken() };
        const pair = await rotateRefreshToken(app, tx, stored, sessionSubject(user), clientOf(request));
        await auditAuth(tx, request, {
          practiceId: user.practice_id,
          actorType: 'user',
          actorId: user.id,
          action: 'auth.refresh',
          resourceIds: [user.id],
          outcome: 'success',
        });
        return { tokens: { ...pair, user: toUser(user) } };
      });
      if ('error' in outcome) throw outcome.error;
      return outcome.tokens;
    },
  );

  app.post(
    '/auth/logout',
    {
      config: { selfService: true, optionalBody: true },
      schema: {
        tags: ['Authentication'],
        summary: 'End the session',
        description:
          'Revokes the current access token and the refresh token family given (or, without one, every session of the user).',
        body: LogoutBody,
        response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses(400, 401, 403) },
      },
      // The body is optional: a logout with none is "every session", not a 400.
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { refreshToken } = (request.body ?? {}) as { refreshToken?: string };
      await persistTokenRevocation(db, app.auth.revocations, principal.jti!, principal.expiresAt!);
      await withPractice(db, principal.practiceId, async (tx) => {
        let revoked = 0;
        if (refreshToken !== undefined) {
          const stored = isRefreshTokenFormat(refreshToken) ? await lockRefreshToken(tx, refreshToken) : undefined;
          if (stored !== undefined && stored.user_id === principal.id) revoked = await revokeFamily(tx, stored.family_id);
        } else {
          // Every session: its refresh tokens, and the access tokens other devices still hold.
          revoked = await revokeUserSessions(tx, principal.id);
          await cutOffAccessTokens(app, tx, principal.id);
        }
        await auditAuth(tx, request, { ...auditActor(principal), action: 'auth.logout', resourceIds: [principal.id], outcome: 'success', details: { refreshTokensRevoked: revoked } });
      });
      return reply.code(204).send();
    },
  );

  app.get(
    '/auth/me',
    {
      config: { selfService: true },
      schema: { tags: ['Authentication'], summary: 'The signed-in user', response: { 200: Type.Ref('User'), ...errorResponses(401, 403) } },
    },
    async (request) => {
      const principal = principalOf(request);
      const user = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [principal.id]);
        return rows[0];
      });
      if (user === undefined) throw unauthorized();
      return toUser(user);
    },
  );

  app.post(
    '/auth/password',
    {
      config: { selfService: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Change one’s own password',
        description: 'Ends every other session of the user and returns a fresh token pair for this one.',
        body: PasswordChangeBody,
        response: { 200: TokenResponse, ...errorResponses(400, 401, 403, 422) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body as { currentPassword: string; newPassword: string };
      const current = await confirmPassword(request, body.currentPassword, 'auth.password_change', 'currentPassword');
      const problems = checkPasswordPolicy(body.newPassword, {
        email: current.email,
        names: [current.first_name, current.last_name],
      });
      if (problems.length > 0) throw validationError(problems.map((p) => ({ field: 'newPassword', message: p.message })));
      const hash = await hashPassword(body.newPassword);
      return withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<UserRow>(
          `UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 RETURNING ${USER_COLUMNS}`,
          [principal.id, hash],
        );
        const user = rows[0]!;
        const revoked = await revokeUserSessions(tx, user.id);
        const cutoff = await cutOffAccessTokens(app, tx, user.id);
        const session = await startSession(app, tx, { id: user.id, email: user.email, role: user.role, practiceId: user.practice_id }, clientOf(request), cutoff);
        await auditAuth(tx, request, { ...auditActor(principal), action: 'auth.password_change', resourceIds: [user.id], outcome: 'success', details: { sessionsRevoked: revoked } });
        return { accessToken: session.accessToken, refreshToken: session.refreshToken, expiresIn: session.expiresIn, user: toUser(user) };
      });
    },
  );

  async function mfaStateOf(tx: Queryable, userId: string): Promise<MfaState & { email: string; locked: boolean }> {
    const { rows } = await tx.query<MfaState & { email: string; locked: boolean }>(
      `SELECT ${MFA_STATE_COLUMNS}, email, ${LOCKED_COLUMN} FROM users WHERE id = $1`,
      [userId],
    );
    if (rows[0] === undefined) throw unauthorized();
    return rows[0];
  }

  app.post(
    '/auth/mfa/setup',
    {
      config: { selfService: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Start MFA enrolment',
        description: 'Returns a new TOTP secret and an otpauth:// URI (SHA-256, 6 digits, 30 s). MFA turns on only after POST /auth/mfa/verify with one valid code.',
        body: MfaSetupBody,
        response: { 200: MfaSetupResponse, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { algorithm = 'SHA256', password } = request.body as { algorithm?: 'SHA256' | 'SHA1'; password: string };
      await confirmPassword(request, password, 'auth.mfa_setup', 'password');
      return withPractice(db, principal.practiceId, async (tx) => {
        const state = await mfaStateOf(tx, principal.id);
        if (state.mfa_enabled) throw conflict('MFA_ALREADY_ENABLED', 'MFA is already enabled; disable it first to enrol a new device');
        const enrolment = await beginEnrolment(app, tx, { id: principal.id, email: state.email }, algorithm);
        await auditAuth(tx, request, { ...auditActor(principal), action: 'auth.mfa_setup', resourceIds: [principal.id], outcome: 'success', details: { algorithm } });
        return enrolment;
      });
    },
  );

  app.post(
    '/auth/mfa/verify',
    {
      config: { selfService: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Confirm MFA enrolment',
        description: 'Enables MFA after one valid code and returns 10 single-use recovery codes (shown only once).',
        body: MfaTokenBody,
        response: { 200: MfaVerifyResponse, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { token } = request.body as { token: string };
      await spendAccountAttempt(request);
      const result = await withPractice(db, principal.practiceId, async (tx) => {
        const state = await mfaStateOf(tx, principal.id);
        if (state.mfa_enabled) throw conflict('MFA_ALREADY_ENABLED', 'MFA is already enabled');
        if (state.mfa_pending_secret === null) {
          throw unprocessable('MFA_SETUP_REQUIRED', 'Call POST /auth/mfa/setup first');
        }
        if (state.locked) return { locked: true, codes: null };
        const codes = await completeEnrolment(app, tx, state, token.replace(/\s+/g, ''));
        if (codes !== null) {
          await auditAuth(tx, request, { ...auditActor(principal), action: 'auth.mfa_enable', resourceIds: [principal.id], outcome: 'success' });
        }
        return { locked: false, codes };
      });
      if (result.codes === null) {
        await refuseAccountAttempt(request, result.locked, 'auth.mfa_enable', 'bad_code');
        throw invalidMfaCode();
      }
      return { mfaEnabled: true as const, recoveryCodes: result.codes };
    },
  );

  app.post(
    '/auth/mfa/disable',
    {
      config: { selfService: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Disable MFA',
        description: 'Needs the current password and a valid current code (or a recovery code).',
        body: MfaDisableBody,
        response: { 204: { type: 'null', description: 'MFA disabled' }, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { token, password } = request.body as { token: string; password: string };
      await confirmPassword(request, password, 'auth.mfa_disable', 'password');
      const result = await withPractice(db, principal.practiceId, async (tx) => {
        const state = await mfaStateOf(tx, principal.id);
        if (!state.mfa_enabled) throw conflict('MFA_NOT_ENABLED', 'MFA is not enabled');
        if (state.locked) return { locked: true, ok: false };
        const factor = await verifySecondFactor(app, tx, state, token.trim());
        if (factor === null) return { locked: false, ok: false };
        await disableMfa(tx, principal.id);
        await auditAuth(tx, request, { ...auditActor(principal), action: 'auth.mfa_disable', resourceIds: [principal.id], outcome: 'success', details: { factor } });
        return { locked: false, ok: true };
      });
      if (!result.ok) {
        await refuseAccountAttempt(request, result.locked, 'auth.mfa_disable', 'bad_code');
        throw invalidMfaCode();
      }
      return reply.code(204).send();
    },
  );
}
