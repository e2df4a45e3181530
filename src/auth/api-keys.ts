// /v1/api-keys (blueprint 1.1, X-API-Key): for integrations (POS, loyalty exports) that must not
// hold a person's password. A key is shown once, stored as a SHA-256 hash, bound to one practice,
// limited to permissions its creator holds, revocable, and its last use is recorded.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { withPractice } from '../db/scope.js';
import { AppError, notFound, validationError } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid, PathId } from '../http/pagination.js';
import { auditActor, principalOf } from './guard.js';
import { isKnownGrant, isValidPermission, permissionsNotGrantable } from './rbac.js';
import { apiKeyHint, generateApiKey, hashToken } from './tokens.js';

const ApiKey = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    keyHint: Type.String({ description: 'The first characters of the key, to recognise it' }),
    permissions: Type.Array(Type.String()),
    createdBy: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'ApiKey' },
);

const CreatedApiKey = Type.Intersect([
  Type.Ref('ApiKey'),
  Type.Object({ key: Type.String({ description: 'The key itself. Shown only in this response.' }) }),
]);

const CreateApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    permissions: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 50, uniqueItems: true }),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: PathId() });

interface ApiKeyRow {
  id: string;
  name: string;
  key_hint: string;
  permissions: string[];
  created_by: string | null;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = 'id, name, key_hint, permissions, created_by, created_at, last_used_at, revoked_at';

const toApiKey = (row: ApiKeyRow) => ({
  id: row.id,
  name: row.name,
  keyHint: row.key_hint,
  permissions: row.permissions,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  lastUsedAt: row.last_used_at?.toISOString() ?? null,
  revokedAt: row.revoked_at?.toISOString() ?? null,
});

export async function apiKeyRoutes(app: FastifyInstance): Promise<void> {
  app.addSchema(ApiKey);

  app.post(
    '/api-keys',
    {
      config: { permission: 'admin:api-keys' },
      schema: {
        tags: ['Authentication'],
        summary: 'Create an API key',
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKey, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body as { name: string; permissions: string[] };
      // Checked before what the caller may grant: a permission that doesn't exist is the request's
      // mistake (400) whoever sends it, not a lack of rights (403).
      const unknown = body.permissions.filter((p) => !isKnownGrant(p));
      if (unknown.length > 0) {
        throw validationError(
          unknown.map((p) => ({
            field: 'permissions',
            message: isValidPermission(p) ? `"${p}" is not a known permission` : `"${p}" is not a permission like read:patients`,
          })),
        );
      }
      const beyond = permissionsNotGrantable(principal.permissions, body.permissions);
      if (beyond.length > 0) {
        throw new AppError('FORBIDDEN', 403, `You cannot grant permissions you do not hold: ${beyond.join(', ')}`);
      }
      const key = generateApiKey();
      const row = await withPractice(app.db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<ApiKeyRow>(
          `INSERT INTO api_keys (practice_id, name, key_hash, key_hint, permissions, created_by)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
          [principal.practiceId, body.name, hashToken(key), apiKeyHint(key), body.permissions, principal.kind === 'user' ? principal.id : null],
        );
        const created = rows[0]!;
        await recordAudit(tx, {
          ...requestOrigin(request),
          ...auditActor(principal),
          action: 'api_key.create',
          resourceType: 'api_key',
          resourceIds: [created.id],
          outcome: 'success',
          details: { permissions: body.permissions },
        });
        return created;
      });
      return reply.code(201).header('location', `${app.prefix}/api-keys/${row.id}`).send({ ...toApiKey(row), key });
    },
  );

  app.get(
    '/api-keys',
    {
      config: { permission: 'admin:api-keys' },
      schema: {
        tags: ['Authentication'],
        summary: 'List API keys (never the keys themselves)',
        response: { 200: Type.Object({ data: Type.Array(Type.Ref('ApiKey')) }), ...errorResponses(401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const rows = await withPractice(app.db, principal.practiceId, async (tx) =>
        (await tx.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at DESC, id`)).rows,
      );
      return { data: rows.map(toApiKey) };
    },
  );

  app.delete(
    '/api-keys/:id',
    {
      config: { permission: 'admin:api-keys' },
      schema: {
        tags: ['Authentication'],
        summary: 'Revoke an API key',
        params: IdParams,
        response: { 204: { type: 'null', description: 'Revoked' }, ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { id } = request.params as { id: string };
      if (!isUuid(id)) throw notFound('API key');
      const revoked = await withPractice(app.db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<{ id: string }>(
          'UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id',
          [id],
        );
        if (rows.length === 0) return false;
        await recordAudit(tx, {
          ...requestOrigin(request),
          ...auditActor(principal),
          action: 'api_key.revoke',
          resourceType: 'api_key',
          resourceIds: [id],
          outcome: 'success',
        });
        return true;
      });
      if (!revoked) throw notFound('API key');
      return reply.code(204).send();
    },
  );
}
