// GET /v1/audit-events: the practice's audit trail for its administrators (admin:audit-events),
// GET /v1/audit-events/verify: recomputes the practice's hash chain, and
// GET /v1/audit-events/export: the sealed events of a time range with their seals (audit/export.ts).
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { auditActor, principalOf } from '../auth/guard.js';
import { withPractice } from '../db/scope.js';
import { errorResponses } from '../http/openapi.js';
import { PageQuery, paginated, pagination } from '../http/pagination.js';
import { validationError } from '../http/errors.js';
import { recordAudit, requestOrigin, sealAuditEvents, sealedThrough, verifyAuditChain } from './audit.js';
import { auditExport, type ExportFormat } from './export.js';

const ExportQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Events at or after (default: the oldest kept)' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Events before (default: now)' })),
    format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' })),
  },
  { additionalProperties: false },
);

const EXPORT_TYPES: Record<ExportFormat, string> = { ndjson: 'application/x-ndjson; charset=utf-8', csv: 'text/csv; charset=utf-8' };

const AuditEventSchema = Type.Object(
  {
    id: Type.Integer(),
    occurredAt: Type.String({ format: 'date-time' }),
    actorType: Type.String(),
    actorId: Type.Union([Type.String(), Type.Null()]),
    action: Type.String(),
    resourceType: Type.Union([Type.String(), Type.Null()]),
    resourceIds: Type.Array(Type.String()),
    outcome: Type.String(),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    requestId: Type.Union([Type.String(), Type.Null()]),
    correlationId: Type.Union([Type.String(), Type.Null()]),
    details: Type.Record(Type.String(), Type.Unknown()),
    sealed: Type.Boolean({ description: 'Linked into the hash chain (events are sealed within seconds)' }),
  },
  { $id: 'AuditEvent' },
);

const ListQuery = Type.Object(
  {
    ...PageQuery,
    action: Type.Optional(Type.String({ maxLength: 100, description: 'Exact action, or a prefix ending in * (auth.*)' })),
    outcome: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('failure'), Type.Literal('denied')])),
    actorId: Type.Optional(Type.String({ maxLength: 64 })),
    resourceType: Type.Optional(Type.String({ maxLength: 50 })),
    resourceId: Type.Optional(Type.String({ maxLength: 64 })),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

type ListQuery = {
  page: number;
  limit: number;
  action?: string;
  outcome?: string;
  actorId?: string;
  resourceType?: string;
  resourceId?: string;
  from?: string;
  to?: string;
};

interface Row {
  id: number;
  occurred_at: Date;
  actor_type: string;
  actor_id: string | null;
  action: string;
  resource_type: string | null;
  resource_ids: string[];
  outcome: string;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  correlation_id: string | null;
  details: Record<string, unknown>;
  sealed: boolean;
  total: number;
}

function actionFilter(action: string | undefined): { exact: string | null; prefix: string | null } {
  if (action === undefined) return { exact: null, prefix: null };
  if (action.endsWith('*')) return { exact: null, prefix: action.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`) + '%' };
  return { exact: action, prefix: null };
}

export async function auditRoutes(app: FastifyInstance): Promise<void> {
  app.addSchema(AuditEventSchema);

  app.get(
    '/audit-events',
    {
      config: { permission: 'admin:audit-events' },
      schema: {
        tags: ['Meta'],
        summary: 'The practice’s audit trail, newest first',
        querystring: ListQuery,
        response: { 200: paginated(Type.Ref('AuditEvent')), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const query = request.query as ListQuery;
      const action = actionFilter(query.action);
      const params = [
        action.exact,
        action.prefix,
        query.outcome ?? null,
        query.actorId ?? null,
        query.resourceType ?? null,
        query.resourceId ?? null,
        query.from ?? null,
        query.to ?? null,
      ];
      const where = `($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR action LIKE $2)
        AND ($3::text IS NULL OR outcome = $3) AND ($4::text IS NULL OR actor_id = $4)
        AND ($5::text IS NULL OR resource_type = $5) AND ($6::text IS NULL OR $6 = ANY (resource_ids))
        AND ($7::timestamptz IS NULL OR occurred_at >= $7) AND ($8::timestamptz IS NULL OR occurred_at < $8)`;
      const sealedBelow = await sealedThrough(app.db, principal.practiceId);
      return withPractice(app.db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<Row>(
          `SELECT id, occurred_at, actor_type, actor_id, action, resource_type, resource_ids, outcome, ip,
                  user_agent, request_id, correlation_id, details, xact_id < $11::xid8 AS sealed,
                  count(*) OVER ()::int AS total
             FROM audit_events WHERE ${where}
            ORDER BY occurred_at DESC, id DESC LIMIT $9 OFFSET $10`,
          [...params, query.limit, (query.page - 1) * query.limit, sealedBelow],
        );
        const total =
          rows[0]?.total ??
          (await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE ${where}`, params)).rows[0]!.n;
        // Reading the audit trail is itself an auditable act.
        await recordAudit(tx, {
          ...requestOrigin(request),
          ...auditActor(principal),
          action: 'audit.read',
          resourceType: 'audit_event',
          outcome: 'success',
          details: { returned: rows.length },
        });
        return {
          data: rows.map((row) => ({
            id: row.id,
            occurredAt: row.occurred_at.toISOString(),
            actorType: row.actor_type,
            actorId: row.actor_id,
            action: row.action,
            resourceType: row.resource_type,
            resourceIds: row.resource_ids,
            outcome: row.outcome,
            ip: row.ip,
            userAgent: row.user_agent,
            requestId: row.request_id,
            correlationId: row.correlation_id,
            details: row.details,
            sealed: row.sealed,
          })),
          pagination: pagination(query.page, query.limit, total),
        };
      });
    },
  );

  app.get(
    '/audit-events/export',
    {
      // A long range takes a while to stream; the request deadline must not cut it off midway.
      config: { permission: 'admin:audit-events', requestTimeoutMs: 600_000 },
      schema: {
        tags: ['Meta'],
        summary: 'Export the practice’s sealed audit events with their seals',
        description:
          'Streams the sealed events of [from, to), rounded out to the whole seals that cover them, each seal before its events, as NDJSON (default) or CSV. ' +
          'Every event is its canonical text, exactly what its seal hashed, so `npm run cli -- verify-audit-export FILE` verifies the file without the database (docs/hipaa.md).',
        querystring: ExportQuery,
        response: {
          200: {
            description: 'The export, one record per line: export header, seal, event…, end',
            content: { 'application/x-ndjson': { schema: Type.String() }, 'text/csv': { schema: Type.String() } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const query = request.query as { from?: string; to?: string; format?: ExportFormat };
      const format = query.format ?? 'ndjson';
      const to = query.to ?? new Date().toISOString();
      if (query.from !== undefined && Date.parse(query.from) >= Date.parse(to)) {
        throw validationError([{ field: 'from', message: 'must be before to' }]);
      }
      await sealAuditEvents(app.db);
      const sealedBelow = await sealedThrough(app.db, principal.practiceId);
      await withPractice(app.db, principal.practiceId, (tx) =>
        recordAudit(tx, {
          ...requestOrigin(request),
          ...auditActor(principal),
          action: 'audit.export',
          resourceType: 'audit_event',
          outcome: 'success',
          details: { from: query.from ?? null, to, format },
        }),
      );
      const stamp = to.replace(/[^0-9TZ]/g, '');
      return reply
        .type(EXPORT_TYPES[format])
        .header('content-disposition', `attachment; filename="audit-${principal.practiceId}-${stamp}.${format}"`)
        .send(Readable.from(auditExport(app.db, { practiceId: principal.practiceId, from: query.from ?? null, to, format, sealedThrough: sealedBelow })));
    },
  );

  app.get(
    '/audit-events/verify',
    {
      config: { permission: 'admin:audit-events' },
      schema: {
        tags: ['Meta'],
        summary: 'Verify the practice’s audit hash chain',
        description:
          'Seals the events of finished transactions, then recomputes the practice’s chain: every seal’s hash from its predecessor and every sealed event’s digest. `brokenAt` names the first event that no longer matches (altered, or next to one removed or added).',
        response: {
          200: Type.Object({ ok: Type.Boolean(), checked: Type.Integer(), brokenAt: Type.Union([Type.Integer(), Type.Null()]) }),
          ...errorResponses(401, 403),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      await sealAuditEvents(app.db);
      return verifyAuditChain(app.db, principal.practiceId);
    },
  );
}
