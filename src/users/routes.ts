// /v1/users: an ADMIN manages the practice's staff accounts (admin:users). Passwords follow
// NIST SP 800-63B via checkPasswordPolicy. Deactivation cuts off the user's tokens at once, and
// the last active ADMIN of a practice can't be demoted or deactivated (nobody could manage it).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { auditActor, principalOf, type Principal } from '../auth/guard.js';
import { checkPasswordPolicy } from '../auth/passwords.js';
import { permissionsForRole, permissionsNotGrantable, type Role } from '../auth/rbac.js';
import { cutOffAccessTokens, revokeUserSessions } from '../auth/sessions.js';
import { normaliseEmail, RoleSchema, toUser, USER_COLUMNS, type UserRow } from '../auth/user-model.js';
import type { Queryable } from '../db/database.js';
import { withPractice, withSystem } from '../db/scope.js';
import { conflict, forbidden, notFound, unprocessable, validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid, PageQuery, paginated, pagination, PathId } from '../http/pagination.js';
import { insertUser } from './first-start.js';

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: "^[\\p{L}\\p{M}][\\p{L}\\p{M}' .-]*$" });

const CreateUserBody = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 8, maxLength: 512 }),
    role: RoleSchema,
    firstName: Name,
    lastName: Name,
  },
  { additionalProperties: false },
);

const UpdateUserBody = Type.Object(
  {
    role: Type.Optional(RoleSchema),
    firstName: Type.Optional(Name),
    lastName: Type.Optional(Name),
    active: Type.Optional(Type.Boolean({ description: 'false deactivates: every token of the user stops working at once' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

const ListQuery = Type.Object(
  {
    ...PageQuery,
    role: Type.Optional(RoleSchema),
    active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: PathId() });

type CreateUser = { email: string; password: string; role: UserRow['role']; firstName: string; lastName: string };
type UpdateUser = { role?: UserRow['role']; firstName?: string; lastName?: string; active?: boolean };

async function audit(tx: Queryable, request: FastifyRequest, principal: Principal, action: string, userId: string, details: Record<string, unknown> = {}) {
  await recordAudit(tx, {
    ...requestOrigin(request),
    ...auditActor(principal),
    action,
    resourceType: 'user',
    resourceIds: [userId],
    outcome: 'success',
    details,
  });
}

async function findUser(tx: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0];
}

/**
 * Nobody hands out more than they hold: creating a user with a role, or changing a user's role,
 * needs every permission of that role (and, for a change, of the role being taken away). Without
 * this, an API key scoped to admin:users could mint itself an ADMIN.
 */
function assertCanAssignRole(principal: Principal, ...roles: Role[]): void {
  for (const role of roles) {
    const beyond = permissionsNotGrantable(principal.permissions, permissionsForRole(role));
    if (beyond.length > 0) {
      throw forbidden(`Assigning or changing the role ${role} needs ${beyond.join(', ')}, which you do not hold`);
    }
  }
}

/** Would this change leave the practice without an active ADMIN? */
async function removesLastAdmin(tx: Queryable, user: UserRow, change: UpdateUser): Promise<boolean> {
  const losesAdmin = (change.role !== undefined && change.role !== 'ADMIN') || change.active === false;
  if (user.role !== 'ADMIN' || !user.active || !losesAdmin) return false;
  // Locking every active admin's row, in one order, serialises concurrent demotions (each would
  // otherwise leave the other) without the two transactions deadlocking on each other's rows.
  const { rows } = await tx.query<{ id: string }>("SELECT id FROM users WHERE role = 'ADMIN' AND active ORDER BY id FOR UPDATE");
  return rows.filter((row) => row.id !== user.id).length === 0;
}

export async function userRoutes(app: FastifyInstance): Promise<void> {
  const { db } = app;

  app.post(
    '/users',
    {
      config: { permission: 'admin:users' },
      schema: {
        tags: ['Authentication'],
        summary: 'Create a user of this practice',
        body: CreateUserBody,
        response: { 201: Type.Ref('User'), ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body as CreateUser;
      assertCanAssignRole(principal, body.role);
      const email = normaliseEmail(body.email);
      const problems = checkPasswordPolicy(body.password, { email, names: [body.firstName, body.lastName] });
      if (problems.length > 0) throw validationError(problems);
      // Emails are unique across the service (login takes only an email), so the check is global.
      const taken = await withSystem(db, async (tx) => (await tx.query('SELECT 1 FROM users WHERE email = $1', [email])).rows.length > 0);
      if (taken) throw conflict('USER_EXISTS', 'A user with this email already exists', [{ field: 'email', message: 'is already in use' }]);
      const user = await withPractice(db, principal.practiceId, async (tx) => {
        const id = await insertUser(tx, principal.practiceId, { ...body, email });
        await audit(tx, request, principal, 'user.create', id, { role: body.role });
        return (await findUser(tx, id))!;
      }).catch((error: { code?: string }) => {
        if (error.code === '23505') throw conflict('USER_EXISTS', 'A user with this email already exists', [{ field: 'email', message: 'is already in use' }]);
        throw error;
      });
      return reply.code(201).header('location', `${app.prefix}/users/${user.id}`).send(toUser(user));
    },
  );

  app.get(
    '/users',
    {
      config: { permission: 'admin:users' },
      schema: {
        tags: ['Authentication'],
        summary: 'List the practice’s users',
        querystring: ListQuery,
        response: { 200: paginated(Type.Ref('User')), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const query = request.query as { page: number; limit: number; role?: string; active?: boolean };
      return withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<UserRow & { total: number }>(
          `SELECT ${USER_COLUMNS}, count(*) OVER ()::int AS total FROM users
            WHERE ($1::text IS NULL OR role = $1) AND ($2::boolean IS NULL OR active = $2)
            ORDER BY last_name, first_name, id LIMIT $3 OFFSET $4`,
          [query.role ?? null, query.active ?? null, query.limit, (query.page - 1) * query.limit],
        );
        const total = rows[0]?.total ?? (await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM users WHERE ($1::text IS NULL OR role = $1) AND ($2::boolean IS NULL OR active = $2)',
          [query.role ?? null, query.active ?? null],
        )).rows[0]!.n;
        return { data: rows.map(toUser), pagination: pagination(query.page, query.limit, total) };
      });
    },
  );

  app.get(
    '/users/:id',
    {
      config: { permission: 'admin:users' },
      schema: { tags: ['Authentication'], summary: 'Get a user', params: IdParams, response: { 200: Type.Ref('User'), ...errorResponses(401, 403, 404) } },
    },
    async (request) => {
      const principal = principalOf(request);
      const { id } = request.params as { id: string };
      if (!isUuid(id)) throw notFound('User');
      const user = await withPractice(db, principal.practiceId, (tx) => findUser(tx, id));
      if (user === undefined) throw notFound('User');
      return toUser(user);
    },
  );

  async function updateUser(request: FastifyRequest, id: string, change: UpdateUser) {
    const principal = principalOf(request);
    if (!isUuid(id)) throw notFound('User');
    return withPractice(db, principal.practiceId, async (tx) => {
      const before = await findUser(tx, id);
      if (before === undefined) throw notFound('User');
      // Changing anything about an account (its role, name, or whether it can sign in) needs the
      // power of its role: an admin:users key can manage staff, never an ADMIN.
      assertCanAssignRole(principal, before.role, ...(change.role === undefined ? [] : [change.role]));
      if (await removesLastAdmin(tx, before, change)) {
        throw unprocessable('LAST_ADMIN', 'A practice must keep at least one active ADMIN');
      }
      const { rows } = await tx.query<UserRow>(
        `UPDATE users SET role = coalesce($2, role), first_name = coalesce($3, first_name),
                last_name = coalesce($4, last_name), active = coalesce($5, active),
                deactivated_at = CASE WHEN $5 = false THEN coalesce(deactivated_at, now())
                                      WHEN $5 = true THEN NULL ELSE deactivated_at END,
                updated_at = now()
          WHERE id = $1 RETURNING ${USER_COLUMNS}`,
        [id, change.role ?? null, change.firstName ?? null, change.lastName ?? null, change.active ?? null],
      );
      const after = rows[0]!;
      if (change.role !== undefined && change.role !== before.role) {
        // The old role's permissions live in issued tokens: end them so the new role applies now.
        await cutOffAccessTokens(app, tx, id);
        await audit(tx, request, principal, 'user.role_change', id, { from: before.role, to: after.role });
      }
      if ((change.role !== undefined && change.role !== before.role) || (before.active && !after.active)) {
        // Keys made by this person carried their old powers: they go with them.
        const { rowCount: keysRevoked } = await tx.query(
          'UPDATE api_keys SET revoked_at = now() WHERE created_by = $1 AND revoked_at IS NULL',
          [id],
        );
        if (keysRevoked > 0) await audit(tx, request, principal, 'api_key.revoke', id, { reason: 'creator_changed', keysRevoked });
      }
      if (before.active && !after.active) {
        const sessions = await revokeUserSessions(tx, id);
        await cutOffAccessTokens(app, tx, id);
        await audit(tx, request, principal, 'user.deactivate', id, { sessionsRevoked: sessions });
      } else if (!before.active && after.active) {
        await audit(tx, request, principal, 'user.reactivate', id);
      }
      if (change.firstName !== undefined || change.lastName !== undefined) await audit(tx, request, principal, 'user.update', id);
      return toUser(after);
    });
  }

  app.patch(
    '/users/:id',
    {
      config: { permission: 'admin:users' },
      schema: {
        tags: ['Authentication'],
        summary: 'Change a user’s role, name or active flag',
        params: IdParams,
        body: UpdateUserBody,
        response: { 200: Type.Ref('User'), ...errorResponses(400, 401, 403, 404, 422) },
      },
    },
    async (request) => updateUser(request, (request.params as { id: string }).id, request.body as UpdateUser),
  );

  app.delete(
    '/users/:id',
    {
      config: { permission: 'admin:users' },
      schema: {
        tags: ['Authentication'],
        summary: 'Deactivate a user (accounts are never erased: the audit log refers to them)',
        params: IdParams,
        response: { 204: { type: 'null', description: 'Deactivated' }, ...errorResponses(401, 403, 404, 422) },
      },
    },
    async (request, reply) => {
      await updateUser(request, (request.params as { id: string }).id, { active: false });
      return reply.code(204).send();
    },
  );
}
