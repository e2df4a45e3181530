// authenticate + authorize for every versioned route. A request under /v1 or /v2 either hits a
// route declared `public`, or it must carry a valid bearer token or API key whose permissions
// cover the route's declared `permission`. A route that declares neither is refused (fail closed),
// and a test walks every route to make sure none is left that way.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requestOrigin } from '../audit/audit.js';
import type { Database } from '../db/database.js';
import { isUuid, withSystem } from '../db/scope.js';
import { AppError, forbidden, unauthorized } from '../http/errors.js';
import { allowedByEmergencyAccess } from './emergency-access.js';
import { AccessTokenVerifier, JwtError, type JwtSecret } from './jwt.js';
import { hasPermission, type Role } from './rbac.js';
import type { RevocationStore } from './revocation.js';
import { hashToken, isApiKeyFormat } from './tokens.js';

export interface Principal {
  kind: 'user' | 'api_key';
  /** The user id, or the API key id. */
  id: string;
  practiceId: string;
  permissions: string[];
  role: Role | null;
  email: string | null;
  /** Access-token id and expiry (users only), for logout. */
  jti: string | null;
  expiresAt: number | null;
  /** Access-token issue time (users only): a user's revocation cut-off is compared with it. */
  issuedAt: number | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface GuardOptions {
  db: Database;
  keys: Record<string, JwtSecret>;
  issuer: string;
  audience: string;
  revocations: RevocationStore;
}

const VERSIONED = /^\/v\d+\//;

/** The principal, or a 401 thrown: handlers behind the guard may rely on it being there. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null) throw unauthorized();
  return request.principal;
}

/** Who an audit event names as its actor. */
export function auditActor(principal: Principal) {
  return {
    practiceId: principal.practiceId,
    actorType: principal.kind === 'user' ? ('user' as const) : ('api_key' as const),
    actorId: principal.id,
  };
}

async function principalFromBearer(token: string, verifier: AccessTokenVerifier, options: GuardOptions): Promise<Principal> {
  let claims;
  try {
    claims = verifier.verify(token);
  } catch (error) {
    if (error instanceof JwtError) {
      throw unauthorized(error.reason === 'expired' ? 'Access token expired' : 'Invalid access token');
    }
    throw error;
  }
  const { tokenRevoked, userCutoff } = await options.revocations.check(claims.jti, claims.sub);
  if (tokenRevoked || (userCutoff !== null && claims.iat < userCutoff)) throw unauthorized('Access token revoked');
  return {
    kind: 'user',
    id: claims.sub,
    practiceId: claims.practiceId,
    permissions: claims.permissions,
    role: claims.role,
    email: claims.email,
    jti: claims.jti,
    expiresAt: claims.exp,
    issuedAt: claims.iat,
  };
}

async function principalFromApiKey(key: string, db: Database): Promise<Principal> {
  if (!isApiKeyFormat(key)) throw unauthorized('Invalid API key');
  // The key names its practice only through its hash, so this lookup is a system path.
  const row = await withSystem(db, async (tx) => {
    const { rows } = await tx.query<{ id: string; practice_id: string; permissions: string[] }>(
      `UPDATE api_keys SET last_used_at = now()
        WHERE key_hash = $1 AND revoked_at IS NULL
        RETURNING id, practice_id, permissions`,
      [hashToken(key)],
    );
    return rows[0];
  });
  if (row === undefined) throw unauthorized('Invalid API key');
  return {
    kind: 'api_key',
    id: row.id,
    practiceId: row.practice_id,
    permissions: row.permissions,
    role: null,
    email: null,
    jti: null,
    expiresAt: null,
    issuedAt: null,
  };
}

async function authenticate(request: FastifyRequest, verifier: AccessTokenVerifier, options: GuardOptions): Promise<Principal | null> {
  const authorization = request.headers.authorization;
  const apiKey = request.headers['x-api-key'];
  if (typeof authorization === 'string' && authorization !== '') {
    // The scheme name is case-insensitive (RFC 9110 11.1); the token is not.
    const match = /^Bearer ([A-Za-z0-9_.-]+)$/i.exec(authorization);
    if (match === null) throw unauthorized('Authorization must be "Bearer <access token>"');
    return principalFromBearer(match[1]!, verifier, options);
  }
  if (typeof apiKey === 'string' && apiKey !== '') return principalFromApiKey(apiKey, options.db);
  return null;
}

/**
 * A refused attempt is part of the audit trail (HIPAA 164.312(b)): who tried which route, needing
 * which permission. Only the route's pattern and the record ids in the path are named, never the
 * query or the body (they may hold PHI). Group-committed with the reads' events, and only on the
 * refusal: the allowed path pays nothing. Awaited, so the 403 leaves with its record written; an
 * audit failure is logged and does not turn the 403 into a 500.
 */
async function auditDenial(request: FastifyRequest, principal: Principal): Promise<void> {
  const permission = request.routeOptions.config.permission ?? null;
  // Record ids from the path (:id, :patientId …) are UUIDs; any other text there is not recorded.
  const ids = Object.values((request.params ?? {}) as Record<string, unknown>).filter((value): value is string => typeof value === 'string' && isUuid(value));
  await request.server.auditWriter
    .record({
      ...requestOrigin(request),
      ...auditActor(principal),
      action: 'access.denied',
      resourceType: permission?.split(':')[1] ?? null,
      resourceIds: ids,
      outcome: 'denied',
      details: { permission, method: request.method, route: request.routeOptions.url ?? null },
    })
    .catch((error: unknown) => request.log.error({ err: error }, 'could not audit a permission denial'));
}

export function registerAuthGuard(app: FastifyInstance, options: GuardOptions): void {
  app.decorateRequest('principal', null);
  // Every 403 of an authenticated caller, whether the guard refused the route or a handler refused
  // what the caller asked (granting a permission or a role they don't hold).
  app.addHook('onError', async (request, _reply, error) => {
    if (request.principal !== null && (error as { statusCode?: unknown }).statusCode === 403) await auditDenial(request, request.principal);
  });
  const verifier = new AccessTokenVerifier({ keys: options.keys, issuer: options.issuer, audience: options.audience });
  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url;
    if (url === undefined || !VERSIONED.test(url)) return; // root routes: health, docs, versions
    const config = request.routeOptions.config;
    if (config.public) return;
    const principal = await authenticate(request, verifier, options);
    if (principal === null) {
      reply.header('www-authenticate', 'Bearer');
      throw unauthorized('Authentication required: send "Authorization: Bearer <token>" or "X-API-Key"');
    }
    request.principal = principal;
    if (config.selfService) {
      // A person acting on their own account (logout, MFA, password): no permission, but a person.
      if (principal.kind !== 'user') throw forbidden('This endpoint needs a user’s access token, not an API key');
      return;
    }
    if (config.permissionOneOf !== undefined && config.permission === undefined) {
      if (!config.permissionOneOf.some((permission) => hasPermission(principal.permissions, permission))) {
        throw forbidden(`Missing permission: one of ${config.permissionOneOf.join(', ')}`);
      }
      return;
    }
    if (config.permission === undefined) {
      throw new AppError('FORBIDDEN', 403, 'This endpoint declares no permission and is closed');
    }
    if (!hasPermission(principal.permissions, config.permission)) {
      // Only a request that would be refused asks for break-glass: the normal path costs nothing.
      if (await allowedByEmergencyAccess(request, principal, config.permission)) return;
      throw forbidden(`Missing permission ${config.permission}`);
    }
  });
}
