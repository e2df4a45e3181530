// Emergency access ("break-glass", HIPAA 164.312(a)(2)(ii)): a person whose role lacks a clinical
// permission asks for it with a reason and gets it for a limited time, loudly: an audit event, a
// warn log line and an outbox event at the grant, an audit event for every request the grant
// allows, and a list for administrators to review afterwards and revoke from. docs/hipaa.md has
// the policy (which permissions, which roles, MFA) and why.
//
// The guard asks this module only when a token's own permissions don't cover the route (the
// request would otherwise be a 403), so the normal path costs nothing. The answer comes from
// PostgreSQL each time: an expiry, an end or a revocation applies to the very next request on
// every instance, and a grant dies with the token cut-off of its user (deactivation, role or
// password change, logout everywhere) because it remembers the cut-off it was granted under.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import type { Queryable } from '../db/database.js';
import { isUuid, withPractice } from '../db/scope.js';
import { AppError, forbidden, notFound, unprocessable, validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { PageQuery, paginated, pagination, PathId } from '../http/pagination.js';
import { StringEnum } from '../http/validation.js';
import { auditActor, principalOf, type Principal } from './guard.js';
import { MFA_STATE_COLUMNS, verifySecondFactor, type MfaState } from './mfa.js';
import { hasPermission, type Role } from './rbac.js';

/**
 * What can be broken into: clinical reads and the clinical writes a front desk or practitioner may
 * need when a patient is in front of them. Never admin:* (accounts, keys, the audit trail),
 * never delete:*, never the catalogue or report writes: an emergency never needs those.
 */
export const BREAK_GLASS_PERMISSIONS = [
  'read:patients',
  'read:appointments',
  'read:services',
  'read:reports',
  'read:reconciliations',
  'write:patients',
  'write:appointments',
] as const;

/** Who may ask: every role but ADMIN, which already holds everything. API keys never may. */
export const BREAK_GLASS_ROLES: readonly Role[] = ['PRACTITIONER', 'STAFF', 'MANAGER'];

const USE_ACTION = 'emergency_access.used';

// A grant is live while it hasn't ended or expired, its user is active, and the user's token
// cut-off is still the one it was granted under (any cut-off moves it forward).
const LIVE = `(g.ended_at IS NULL AND g.expires_at > now() AND u.active AND u.tokens_valid_after = g.tokens_valid_after)`;

const GrantRequest = Type.Object(
  {
    permissions: Type.Array(StringEnum(BREAK_GLASS_PERMISSIONS), { minItems: 1, maxItems: BREAK_GLASS_PERMISSIONS.length, uniqueItems: true }),
    reason: Type.String({ minLength: 10, maxLength: 1000, description: 'Why, for the reviewers (kept with the grant, never logged)' }),
    durationMinutes: Type.Optional(Type.Integer({ minimum: 5, maximum: 1440, description: 'Default EMERGENCY_ACCESS_DEFAULT_MINUTES (60), at most EMERGENCY_ACCESS_MAX_MINUTES (240)' })),
    mfaToken: Type.Optional(Type.String({ maxLength: 64, description: 'A current TOTP or recovery code (required while EMERGENCY_ACCESS_REQUIRE_MFA is true)' })),
  },
  { additionalProperties: false },
);
type GrantRequest = { permissions: string[]; reason: string; durationMinutes?: number; mfaToken?: string };

const Grant = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    userId: Type.String({ format: 'uuid' }),
    userEmail: Type.String(),
    userRole: Type.String({ description: 'The user’s role now' }),
    permissions: Type.Array(Type.String()),
    reason: Type.String(),
    grantedAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time' }),
    endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    endedBy: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    endReason: Type.Union([Type.String(), Type.Null()]),
    active: Type.Boolean(),
    uses: Type.Integer({ description: 'Requests this grant allowed (each is an emergency_access.used audit event)' }),
  },
  { $id: 'EmergencyAccessGrant' },
);

const ListQuery = Type.Object(
  {
    ...PageQuery,
    active: Type.Optional(Type.Boolean()),
    userId: Type.Optional(Type.String({ format: 'uuid' })),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ grantId: PathId() });

interface GrantRow {
  id: string;
  user_id: string;
  email: string;
  role: string;
  permissions: string[];
  reason: string;
  granted_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  ended_by: string | null;
  end_reason: string | null;
  active: boolean;
  uses: number;
}

const GRANT_COLUMNS = `g.id, g.user_id, u.email, u.role, g.permissions, g.reason, g.granted_at, g.expires_at, g.ended_at,
  g.ended_by, g.end_reason, ${LIVE} AS active,
  (SELECT count(*) FROM audit_events a
    WHERE a.resource_ids @> ARRAY[g.id::text] AND a.action = '${USE_ACTION}')::int AS uses`;

function toGrant(row: GrantRow) {
  return {
    id: row.id,
    userId: row.user_id,
    userEmail: row.email,
    userRole: row.role,
    permissions: row.permissions,
    reason: row.reason,
    grantedAt: row.granted_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    endedAt: row.ended_at?.toISOString() ?? null,
    endedBy: row.ended_by,
    endReason: row.end_reason,
    active: row.active,
    uses: row.uses,
  };
}

async function grantById(tx: Queryable, practiceId: string, grantId: string): Promise<GrantRow | null> {
  const { rows } = await tx.query<GrantRow>(
    `SELECT ${GRANT_COLUMNS} FROM emergency_access_grants g JOIN users u ON u.id = g.user_id
      WHERE g.practice_id = $1 AND g.id = $2`,
    [practiceId, grantId],
  );
  return rows[0] ?? null;
}

/**
 * For the guard: whether a live grant of this user covers `permission`. When one does, the use is
 * audited (committed before the handler runs, with the request's id, so the route's own events can
 * be tied to it) and logged at warn, and the permission joins the principal's for this request.
 */
export async function allowedByEmergencyAccess(request: FastifyRequest, principal: Principal, permission: string): Promise<boolean> {
  if (principal.kind !== 'user' || principal.role === null || !BREAK_GLASS_ROLES.includes(principal.role)) return false;
  if (!(BREAK_GLASS_PERMISSIONS as readonly string[]).includes(permission)) return false;
  const app = request.server;
  const { rows } = await withPractice(app.db, principal.practiceId, (tx) =>
    tx.query<{ id: string }>(
      `SELECT g.id FROM emergency_access_grants g JOIN users u ON u.id = g.user_id
        WHERE g.user_id = $1 AND g.practice_id = $2 AND $3 = ANY (g.permissions) AND ${LIVE}
        ORDER BY g.expires_at DESC LIMIT 1`,
      [principal.id, principal.practiceId, permission],
    ),
  );
  const grant = rows[0];
  if (grant === undefined) return false;
  await app.auditWriter.record({
    ...requestOrigin(request),
    ...auditActor(principal),
    action: USE_ACTION,
    resourceType: 'emergency_access_grant',
    resourceIds: [grant.id],
    outcome: 'success',
    details: { permission, method: request.method, route: request.routeOptions.url ?? null },
  });
  request.log.warn({ grantId: grant.id, userId: principal.id, permission, route: request.routeOptions.url }, 'emergency access used');
  principal.permissions = [...principal.permissions, permission];
  return true;
}

export async function emergencyAccessRoutes(base: FastifyInstance): Promise<void> {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;
  const limits = app.config.emergencyAccess;
  app.addSchema(Grant);

  const audit = (tx: Queryable, request: FastifyRequest, principal: Principal, action: string, outcome: 'success' | 'denied' | 'failure', grantIds: string[], details: Record<string, unknown>) =>
    recordAudit(tx, { ...requestOrigin(request), ...auditActor(principal), action, resourceType: 'emergency_access_grant', resourceIds: grantIds, outcome, details });

  app.post(
    '/emergency-access',
    {
      config: { selfService: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Break glass: request time-limited emergency permissions',
        description:
          'For PRACTITIONER, STAFF and MANAGER: grants permissions the role lacks, from a fixed clinical list, for `durationMinutes`. Needs MFA enrolled and a current code (`mfaToken`) unless EMERGENCY_ACCESS_REQUIRE_MFA is false. ' +
          'Audited (emergency_access.granted, and emergency_access.used for every request it allows), logged at warn, announced as an emergency_access.granted event, reviewed by administrators at GET /v1/emergency-access.',
        body: GrantRequest,
        response: { 201: Type.Ref('EmergencyAccessGrant'), ...errorResponses(400, 401, 403, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body as GrantRequest;
      const role = principal.role;
      const denied = (tx: Queryable, reason: string) => audit(tx, request, principal, 'emergency_access.granted', 'denied', [], { reason, permissions: body.permissions });
      if (role === null || !BREAK_GLASS_ROLES.includes(role)) {
        await withPractice(db, principal.practiceId, (tx) => denied(tx, 'role'));
        throw forbidden(`Emergency access is not available to the ${String(role)} role (it holds every permission)`);
      }
      const minutes = body.durationMinutes ?? limits.defaultMinutes;
      if (minutes > limits.maxMinutes) {
        throw validationError([{ field: 'durationMinutes', message: `must be at most ${limits.maxMinutes} (EMERGENCY_ACCESS_MAX_MINUTES)` }]);
      }
      const held = body.permissions.filter((permission) => hasPermission(principal.permissions, permission));
      if (held.length > 0) {
        throw unprocessable('PERMISSION_ALREADY_HELD', `Your role already holds ${held.join(', ')}`, held.map((p) => ({ field: 'permissions', message: `${p} is already yours` })));
      }
      const outcome = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<MfaState & { tokens_valid_after: Date }>(
          `SELECT ${MFA_STATE_COLUMNS}, tokens_valid_after FROM users WHERE id = $1 FOR UPDATE`,
          [principal.id],
        );
        const user = rows[0];
        if (user === undefined) throw forbidden();
        if (limits.requireMfa) {
          if (!user.mfa_enabled) {
            await denied(tx, 'mfa_not_enrolled');
            return new AppError('MFA_ENROLMENT_REQUIRED', 403, 'Emergency access needs MFA: enrol an authenticator first (POST /v1/auth/mfa/setup)');
          }
          const code = body.mfaToken?.trim();
          if (code === undefined || code === '') {
            await denied(tx, 'mfa_missing');
            return new AppError('MFA_REQUIRED', 403, 'Emergency access needs a current MFA code in mfaToken', [{ field: 'mfaToken', message: 'is required' }]);
          }
          if ((await verifySecondFactor(app, tx, user, code)) === null) {
            await denied(tx, 'bad_mfa_code');
            return unprocessable('INVALID_MFA_TOKEN', 'Invalid or already used MFA code', [{ field: 'mfaToken', message: 'is not a valid code' }]);
          }
        }
        const { rows: inserted } = await tx.query<{ id: string; expires_at: Date }>(
          `INSERT INTO emergency_access_grants (practice_id, user_id, permissions, reason, expires_at, tokens_valid_after, ip, request_id)
           VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5), $6, $7, $8) RETURNING id, expires_at`,
          [principal.practiceId, principal.id, body.permissions, body.reason, minutes, user.tokens_valid_after, request.ip, request.id],
        );
        const grant = inserted[0]!;
        // The reason may name a patient: it stays in the grant row, out of the log line and the event.
        await audit(tx, request, principal, 'emergency_access.granted', 'success', [grant.id], {
          permissions: body.permissions,
          durationMinutes: minutes,
          expiresAt: grant.expires_at.toISOString(),
        });
        await app.events.record(tx, {
          practiceId: principal.practiceId,
          type: 'emergency_access.granted',
          resourceId: grant.id,
          actor: { type: 'user', id: principal.id },
          refs: { userId: principal.id, permissions: body.permissions.join(','), expiresAt: grant.expires_at.toISOString() },
        });
        return (await grantById(tx, principal.practiceId, grant.id))!;
      });
      if (outcome instanceof AppError) throw outcome;
      request.log.warn({ grantId: outcome.id, userId: principal.id, permissions: outcome.permissions, expiresAt: outcome.expires_at }, 'emergency access granted');
      return reply.code(201).header('location', `/v1/emergency-access/${outcome.id}`).send(toGrant(outcome));
    },
  );

  app.get(
    '/emergency-access',
    {
      config: { permission: 'admin:audit-events' },
      schema: {
        tags: ['Authentication'],
        summary: 'Emergency access grants, newest first, for review',
        description: 'Who asked, why, when, for what, until when, how many requests each grant allowed, and how it ended.',
        querystring: ListQuery,
        response: { 200: paginated(Type.Ref('EmergencyAccessGrant')), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const query = request.query as { page: number; limit: number; active?: boolean; userId?: string };
      return withPractice(db, principal.practiceId, async (tx) => {
        const where = `g.practice_id = $1 AND ($2::boolean IS NULL OR ${LIVE} = $2) AND ($3::uuid IS NULL OR g.user_id = $3)`;
        const params = [principal.practiceId, query.active ?? null, query.userId ?? null];
        const { rows } = await tx.query<GrantRow>(
          `SELECT ${GRANT_COLUMNS} FROM emergency_access_grants g JOIN users u ON u.id = g.user_id
            WHERE ${where} ORDER BY g.granted_at DESC, g.id DESC LIMIT $4 OFFSET $5`,
          [...params, query.limit, (query.page - 1) * query.limit],
        );
        const { rows: count } = await tx.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM emergency_access_grants g JOIN users u ON u.id = g.user_id WHERE ${where}`,
          params,
        );
        await audit(tx, request, principal, 'emergency_access.list', 'success', rows.map((row) => row.id), { returned: rows.length });
        return { data: rows.map(toGrant), pagination: pagination(query.page, query.limit, count[0]!.n) };
      });
    },
  );

  /** Ends a live grant early: a user only their own, an administrator any of the practice's. */
  async function endGrant(request: FastifyRequest, grantId: string, by: 'user' | 'admin', reason: string) {
    const principal = principalOf(request);
    if (!isUuid(grantId)) throw notFound('Emergency access grant');
    const grant = await withPractice(db, principal.practiceId, async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `UPDATE emergency_access_grants SET ended_at = now(), ended_by = $3, end_reason = $4
          WHERE practice_id = $1 AND id = $2 AND ended_at IS NULL AND ($5::uuid IS NULL OR user_id = $5)
          RETURNING id`,
        [principal.practiceId, grantId, principal.id, reason, by === 'user' ? principal.id : null],
      );
      const found = await grantById(tx, principal.practiceId, grantId);
      // A person may end only their own grant; anyone else's is a 404, as if it didn't exist.
      if (found === null || (by === 'user' && found.user_id !== principal.id)) return null;
      if (rows.length > 0) {
        await audit(tx, request, principal, by === 'user' ? 'emergency_access.ended' : 'emergency_access.revoked', 'success', [grantId], { by });
        await app.events.record(tx, {
          practiceId: principal.practiceId,
          type: 'emergency_access.ended',
          resourceId: grantId,
          actor: { type: 'user', id: principal.id },
          refs: { userId: found.user_id, by },
        });
      }
      return found;
    });
    if (grant === null) throw notFound('Emergency access grant');
    request.log.warn({ grantId, userId: grant.user_id, by }, 'emergency access ended');
    return toGrant(grant);
  }

  app.post(
    '/emergency-access/:grantId/end',
    {
      config: { selfService: true, optionalBody: true },
      schema: {
        tags: ['Authentication'],
        summary: 'End one’s own emergency access early',
        params: IdParams,
        response: { 200: Type.Ref('EmergencyAccessGrant'), ...errorResponses(401, 403, 404) },
      },
    },
    async (request) => endGrant(request, request.params.grantId, 'user', 'ended by the user'),
  );

  app.post(
    '/emergency-access/:grantId/revoke',
    {
      config: { permission: 'admin:audit-events' },
      schema: {
        tags: ['Authentication'],
        summary: 'Revoke an emergency access grant',
        description: 'Takes effect on the grant holder’s next request, on every instance.',
        params: IdParams,
        body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false }),
        response: { 200: Type.Ref('EmergencyAccessGrant'), ...errorResponses(400, 401, 403, 404, 413, 415) },
      },
    },
    async (request) => endGrant(request, request.params.grantId, 'admin', (request.body as { reason: string }).reason),
  );
}
