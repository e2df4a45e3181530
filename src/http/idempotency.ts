// Idempotency-Key for POST (issue 4 item 5). A client that retries after a timeout must get the
// first response again, never a second execution (a second appointment, a second patient).
//
// How: before the handler runs, the key is claimed with one INSERT … ON CONFLICT in its own
// short transaction (state in_progress, a fresh claim token). The primary key (practice, key)
// decides concurrent duplicates: exactly one request claims the key; the others see the claim and
// get 409 IDEMPOTENCY_IN_PROGRESS (retry shortly) or, once the first has finished, its stored
// response. After the handler, a 2xx response is stored for replay; any other outcome releases
// the key (the work was rolled back, so running it again is safe), except a 504 (the deadline
// answered while the handler may still commit: outcome unknown, so the key stays claimed).
//
// Routes whose handler records the response inside its own transaction (completeIdempotentRequest,
// route config `idempotent: 'transactional'`) get the strongest guarantee: the change and the
// stored response commit together, so even a crash between them can't lead to a second execution,
// and a claim abandoned by a crashed process may be taken over once its lock has lapsed (the
// claim token fences the old holder out). For other routes a claim abandoned by a crash stays
// in progress until the key expires: a retry is refused rather than risked.
//
// Keys are per practice, live 24 hours, and are compared by a SHA-256 fingerprint of the caller,
// the method, the path and the canonical JSON body: the same key with anything different is 422
// IDEMPOTENCY_KEY_REUSED.
//
// Which POSTs: every authenticated POST whose route needs a write:<resource> permission (patients,
// appointments, services…) by default; others only with route config `idempotent: true` (the
// reconciliation, which stores a run). Administrative and credential routes (admin:*, self-service: API keys, MFA
// setup, users) stay out unless they opt in, because their responses carry secrets shown once,
// and a stored response would keep that secret in a table for a day.
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { createSecretBox, type SecretBox } from '../auth/secret-box.js';
import type { Database, Queryable } from '../db/database.js';
import { withPractice, withSystem } from '../db/scope.js';
import { AppError, validationError } from './errors.js';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const IDEMPOTENCY_TTL_HOURS = 24;
/** How long a claim of a transactional route is held before a crashed holder may be replaced. */
export const IDEMPOTENCY_LOCK_SECONDS = 60;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const VERSIONED = /^\/v\d+\//;
const STORED_HEADERS = ['location', 'content-type'] as const;

export interface IdempotencyClaim {
  practiceId: string;
  key: string;
  token: string;
  /** The handler stored the response in its own transaction. */
  completed: boolean;
  /** onSend has stored or released the claim. */
  settled: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    idempotency: IdempotencyClaim | null;
  }
  interface FastifyInstance {
    /** Seals stored responses: they hold what the request returned (a patient's PHI, say). */
    idempotentResponses: ResponseBox;
  }
}

/** HKDF label of the stored responses' key: useless for anything else ENCRYPTION_KEY protects. */
const RESPONSE_INFO = 'medspasync-pro idempotent-response';
const SEALED_PREFIX = 'v1.';

/**
 * A stored response is sealed (AES-256-GCM) and bound to its practice and key, so a dump of
 * idempotency_keys shows no PHI and a response copied onto another key does not open.
 */
export class ResponseBox {
  private readonly box: SecretBox;
  constructor(encryptionKey: string) {
    this.box = createSecretBox(encryptionKey, RESPONSE_INFO);
  }
  seal(practiceId: string, key: string, body: string): string {
    return this.box.seal(body, `${practiceId}:${key}`);
  }
  /** Opens a stored body; one stored in clear before sealing began (at most 24 h old) passes as is. */
  open(practiceId: string, key: string, stored: string | null): string | null {
    if (stored === null || !stored.startsWith(SEALED_PREFIX)) return stored;
    return this.box.open(stored, `${practiceId}:${key}`).toString('utf8');
  }
}

/** For route schemas: documents the header (validation happens in the hook, for every POST). */
export const IdempotencyKeyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        '1 to 255 visible ASCII characters (a UUID is a good choice). Makes a retry safe: the same key with the same ' +
        'body within 24 hours replays the first response instead of doing the work again; with a different body it is ' +
        '422 IDEMPOTENCY_KEY_REUSED; while the first request is still running, 409 IDEMPOTENCY_IN_PROGRESS.',
    }),
  ),
});

/** JSON with object keys sorted at every level, so {a,b} and {b,a} fingerprint the same. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function requestFingerprint(method: string, url: string, body: unknown, caller = ''): string {
  return createHash('sha256').update(`${caller}\n${method}\n${url}\n${canonicalJson(body)}`).digest('hex');
}

interface StoredKey {
  request_hash: string;
  state: 'in_progress' | 'completed';
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  request_id: string | null;
}

type ClaimOutcome =
  | { kind: 'claimed'; token: string }
  | { kind: 'replay'; stored: StoredKey }
  | { kind: 'mismatch' }
  | { kind: 'in_progress' };

async function claimKey(
  db: Database,
  practiceId: string,
  key: string,
  hash: string,
  request: FastifyRequest,
  takeOverStale: boolean,
): Promise<ClaimOutcome> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const token = randomUUID();
    const outcome = await withPractice(db, practiceId, async (tx): Promise<ClaimOutcome | null> => {
      // Expired keys of this practice go now and then, a bounded batch at a time (the claim below
      // also reuses an expired key in place; purgeExpiredKeys() sweeps every practice).
      if (Math.random() < 0.02) {
        await tx.query(
          `DELETE FROM idempotency_keys WHERE (practice_id, key) IN (
             SELECT practice_id, key FROM idempotency_keys WHERE expires_at <= now() LIMIT 500)`,
        );
      }
      const { rows } = await tx.query<{ claim_token: string }>(
        `INSERT INTO idempotency_keys
           (practice_id, key, request_hash, method, path, state, claim_token, locked_until, request_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'in_progress', $6, now() + make_interval(secs => $7), $8,
                 now() + make_interval(hours => $9))
         ON CONFLICT (practice_id, key) DO UPDATE SET
           request_hash = EXCLUDED.request_hash, method = EXCLUDED.method, path = EXCLUDED.path,
           state = 'in_progress', claim_token = EXCLUDED.claim_token, locked_until = EXCLUDED.locked_until,
           response_status = NULL, response_headers = NULL, response_body = NULL,
           request_id = EXCLUDED.request_id, created_at = now(), expires_at = EXCLUDED.expires_at
         WHERE idempotency_keys.expires_at <= now()
            OR ($10 AND idempotency_keys.state = 'in_progress' AND idempotency_keys.locked_until <= now()
                AND idempotency_keys.request_hash = EXCLUDED.request_hash)
         RETURNING claim_token`,
        [
          practiceId,
          key,
          hash,
          request.method,
          request.url.slice(0, 2000),
          token,
          IDEMPOTENCY_LOCK_SECONDS,
          request.id,
          IDEMPOTENCY_TTL_HOURS,
          takeOverStale,
        ],
      );
      if (rows[0]?.claim_token === token) return { kind: 'claimed', token };
      const existing = await tx.query<StoredKey>(
        `SELECT request_hash, state, response_status, response_headers, response_body, request_id
           FROM idempotency_keys WHERE practice_id = $1 AND key = $2`,
        [practiceId, key],
      );
      const stored = existing.rows[0];
      if (stored === undefined) return null; // released in between: try again
      if (stored.request_hash !== hash) return { kind: 'mismatch' };
      if (stored.state === 'in_progress') return { kind: 'in_progress' };
      return { kind: 'replay', stored };
    });
    if (outcome !== null) return outcome;
  }
  return { kind: 'in_progress' };
}

/**
 * For handlers of `idempotent: 'transactional'` routes: stores the response in the handler's own
 * transaction, so the change and its replayable response commit (or roll back) together. Throws
 * 409 if this request no longer holds the key (its claim lapsed and another request took it over);
 * the handler's transaction then rolls back and nothing is done twice.
 */
export async function completeIdempotentRequest(
  tx: Queryable,
  request: FastifyRequest,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<void> {
  const claim = request.idempotency;
  if (claim === null || claim.completed) return;
  const stored: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', ...headers };
  const result = await tx.query(
    `UPDATE idempotency_keys
        SET state = 'completed', response_status = $4, response_headers = $5, response_body = $6, locked_until = now()
      WHERE practice_id = $1 AND key = $2 AND claim_token = $3 AND state = 'in_progress'`,
    [claim.practiceId, claim.key, claim.token, status, JSON.stringify(stored), request.server.idempotentResponses.seal(claim.practiceId, claim.key, JSON.stringify(body))],
  );
  if (result.rowCount === 0) throw inProgress();
  claim.completed = true;
}

const inProgress = () =>
  new AppError(
    'IDEMPOTENCY_IN_PROGRESS',
    409,
    'A request with this Idempotency-Key is still being processed; retry shortly',
    [{ field: 'Idempotency-Key', message: 'in use by a request that has not finished' }],
    { 'retry-after': '1' },
  );

/** The records a replayed answer without a Location shows again, as its route names them (config.replayedIds). */
function replayedIds(request: FastifyRequest, body: unknown): string[] {
  const pick = request.routeOptions.config.replayedIds;
  if (pick === undefined || body === null || body === undefined) return [];
  try {
    return pick(typeof body === 'string' ? JSON.parse(body) : body);
  } catch {
    return [];
  }
}

async function replay(db: Database, request: FastifyRequest, reply: FastifyReply, practiceId: string, key: string, sealed: StoredKey) {
  const stored = { ...sealed, response_body: request.server.idempotentResponses.open(practiceId, key, sealed.response_body) };
  const headers = stored.response_headers ?? {};
  const location = headers.location;
  const principal = request.principal!;
  // A replay shows the stored record again: it is a read, and audited like one.
  await withPractice(db, practiceId, (tx) =>
    recordAudit(tx, {
      ...requestOrigin(request),
      practiceId,
      actorType: principal.kind,
      actorId: principal.id,
      action: 'idempotency.replay',
      resourceType: null,
      resourceIds: location ? [location.split('/').pop() ?? ''] : replayedIds(request, stored.response_body),
      outcome: 'success',
      details: { method: request.method, path: request.routeOptions.url, status: stored.response_status, originalRequestId: stored.request_id },
    }),
  );
  for (const name of STORED_HEADERS) {
    const value = headers[name];
    if (value !== undefined) reply.header(name, value);
  }
  return reply
    .code(stored.response_status ?? 200)
    .header('idempotent-replayed', 'true')
    .send(stored.response_body ?? '');
}

async function settle(db: Database, request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> {
  const claim = request.idempotency;
  if (claim === null || claim.settled) return;
  claim.settled = true;
  const status = reply.statusCode;
  const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : null;
  const storable = status >= 200 && status < 300 && body !== null;
  if (storable && claim.completed) return;
  // 504: the deadline answered while the handler may still be running and may yet commit. The
  // outcome is unknown, so the key stays in progress: a retry is told to wait (409), and later
  // gets the stored response (transactional routes store it themselves when they commit).
  if (status === 504) return;
  await withPractice(db, claim.practiceId, async (tx) => {
    if (storable) {
      const headers: Record<string, string> = {};
      for (const name of STORED_HEADERS) {
        const value = reply.getHeader(name);
        if (value !== undefined) headers[name] = String(value);
      }
      await tx.query(
        `UPDATE idempotency_keys
            SET state = 'completed', response_status = $4, response_headers = $5, response_body = $6, locked_until = now()
          WHERE practice_id = $1 AND key = $2 AND claim_token = $3 AND state = 'in_progress'`,
        [claim.practiceId, claim.key, claim.token, status, JSON.stringify(headers), request.server.idempotentResponses.seal(claim.practiceId, claim.key, body)],
      );
    } else {
      // Failed (rolled back) or not to be stored: free the key so a retry runs the request.
      await tx.query(
        `DELETE FROM idempotency_keys WHERE practice_id = $1 AND key = $2 AND claim_token = $3 AND state = 'in_progress'`,
        [claim.practiceId, claim.key, claim.token],
      );
    }
  });
}

/** Deletes expired keys of every practice (stored responses may hold PHI: they don't outlive 24 h
 *  by more than a sweep interval). A system path: it is the only cross-practice use of the table. */
export async function purgeExpiredKeys(db: Database, batch = 5000): Promise<number> {
  return withSystem(db, async (tx) => {
    const result = await tx.query(
      `DELETE FROM idempotency_keys WHERE (practice_id, key) IN (
         SELECT practice_id, key FROM idempotency_keys WHERE expires_at <= now() LIMIT $1)`,
      [batch],
    );
    return result.rowCount;
  });
}

/** Whether a route honours Idempotency-Key (see the header comment). */
export function isIdempotentRoute(config: { idempotent?: boolean | 'transactional'; permission?: string }): boolean {
  if (config.idempotent === false) return false;
  if (config.idempotent !== undefined) return true;
  return config.permission?.startsWith('write:') ?? false;
}

/**
 * Authenticated POSTs under /v1 (and later versions) honour Idempotency-Key as isIdempotentRoute()
 * says. Register before the feature routes.
 */
export function registerIdempotency(app: FastifyInstance, db: Database, sweepIntervalMs = 10 * 60_000): void {
  app.decorateRequest('idempotency', null);
  app.decorate('idempotentResponses', new ResponseBox(app.config.encryptionKey));

  const sweep = setInterval(() => {
    purgeExpiredKeys(db).catch((error: unknown) => app.log.error({ err: error }, 'idempotency key sweep failed'));
  }, sweepIntervalMs);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));

  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST') return;
    const routeUrl = request.routeOptions.url;
    if (routeUrl === undefined || !VERSIONED.test(routeUrl)) return;
    const config = request.routeOptions.config;
    if (!isIdempotentRoute(config)) return;
    const mode = config.idempotent;
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (header === undefined) return;
    if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
      throw validationError([{ field: 'Idempotency-Key', message: 'must be 1 to 255 visible ASCII characters' }]);
    }
    const principal = request.principal;
    if (principal === null) return; // a public POST has no practice to keep the key in
    // The caller is part of the fingerprint: another user or key of the practice reusing the same
    // key gets 422, never the first caller's stored response.
    const hash = requestFingerprint(request.method, request.url, request.body, `${principal.kind}:${principal.id}`);
    const outcome = await claimKey(db, principal.practiceId, header, hash, request, mode === 'transactional');
    switch (outcome.kind) {
      case 'claimed':
        request.idempotency = { practiceId: principal.practiceId, key: header, token: outcome.token, completed: false, settled: false };
        return;
      case 'replay':
        return replay(db, request, reply, principal.practiceId, header, outcome.stored);
      case 'mismatch':
        throw new AppError(
          'IDEMPOTENCY_KEY_REUSED',
          422,
          'This Idempotency-Key was already used for a different request; use a new key for a new request',
          [{ field: 'Idempotency-Key', message: 'already used with a different method, path or body' }],
        );
      case 'in_progress':
        throw inProgress();
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (request.idempotency !== null && !request.idempotency.settled) {
      try {
        await settle(db, request, reply, payload);
      } catch (error) {
        // The response itself is fine; the key stays in progress (safe: a retry is refused, not rerun).
        request.log.error({ err: error }, 'could not store the idempotent response');
      }
    }
    return payload;
  });
}
