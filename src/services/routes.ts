// /v1/services: the catalog (read:services / write:services). Services are never deleted:
// `active: false` retires one, so past appointments keep pointing at it and it can't be booked.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { principalOf, type Principal } from '../auth/guard.js';
import { changeBy } from '../events/outbox.js';
import type { Queryable } from '../db/database.js';
import { withPractice } from '../db/scope.js';
import { AppError, notFound, validationError, type ErrorDetail } from '../http/errors.js';
import { IdempotencyKeyHeaders } from '../http/idempotency.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid, pagination } from '../http/pagination.js';
import {
  Service,
  ServiceCreate,
  ServiceIdParams,
  ServiceList,
  ServiceListQuery,
  ServiceUpdate,
  type Service as ServiceBody,
} from './schema.js';


interface ServiceRow {
  id: string;
  name: string;
  category: string;
  duration_minutes: number;
  price_cents: number;
  active: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, name, category, duration_minutes, price_cents, active, created_at, updated_at';

function toBody(row: ServiceRow): ServiceBody {
  return {
    id: row.id,
    name: row.name,
    category: row.category,
    durationMinutes: row.duration_minutes,
    priceCents: row.price_cents,
    active: row.active,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

/** Trims and collapses inner whitespace; an all-blank value is a 400 naming the field. */
function cleanLabel(value: string, field: string, details: ErrorDetail[]): string {
  const cleaned = value.normalize('NFC').trim().replace(/\s+/g, ' ');
  if (cleaned === '') details.push({ field, message: 'must not be blank' });
  return cleaned;
}

async function findByName(tx: Queryable, name: string, exceptId: string | null): Promise<string | undefined> {
  const { rows } = await tx.query<{ id: string }>(
    'SELECT id FROM services WHERE lower(name) = lower($1) AND ($2::uuid IS NULL OR id <> $2::uuid) LIMIT 1',
    [name, exceptId],
  );
  return rows[0]?.id;
}

const serviceExists = (id: string) =>
  new AppError('SERVICE_EXISTS', 409, 'The practice already has a service with this name', [
    { field: 'name', message: `already used by service ${id}` },
  ]);

const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505';

/** A change of the catalog as a domain event (a service holds no PHI: the body goes to includeData receivers). */
function serviceEvent(principal: Principal, type: 'service.created' | 'service.updated', row: ServiceRow, changedFields: string[]) {
  return {
    ...changeBy(principal),
    type,
    resourceId: row.id,
    changedFields,
    refs: { active: row.active },
    resource: toBody(row),
  };
}

export async function serviceRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const db = app.db;

  app.get(
    '/services',
    {
      config: { permission: 'read:services' },
      schema: {
        tags: ['Services'],
        summary: 'List services',
        operationId: 'listServices',
        description: 'Sorted by category, then name. Filter by active to get the bookable ones.',
        querystring: ServiceListQuery,
        response: { 200: ServiceList, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { page, limit, active, category } = request.query;
      return withPractice(db, principal.practiceId, async (tx) => {
        const filters = [active ?? null, category ?? null];
        const where = `($1::boolean IS NULL OR active = $1) AND ($2::text IS NULL OR lower(category) = lower($2))`;
        const count = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM services WHERE ${where}`, filters);
        const { rows } = await tx.query<ServiceRow>(
          `SELECT ${COLUMNS} FROM services WHERE ${where}
            ORDER BY lower(services.category), lower(services.name), services.id LIMIT $3 OFFSET $4`,
          [...filters, limit, (page - 1) * limit],
        );
        const total = count.rows[0]?.n ?? 0;
        return { data: rows.map(toBody), pagination: pagination(page, limit, total) };
      });
    },
  );

  app.get(
    '/services/:serviceId',
    {
      config: { permission: 'read:services' },
      schema: {
        tags: ['Services'],
        summary: 'Get a service',
        operationId: 'getService',
        description: '404 for an unknown id, a malformed id, and another practice\'s service alike.',
        params: ServiceIdParams,
        response: { 200: Service, ...errorResponses(401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { serviceId } = request.params;
      if (!isUuid(serviceId)) throw notFound('Service');
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<ServiceRow>(`SELECT ${COLUMNS} FROM services WHERE id = $1`, [serviceId]);
        return rows[0];
      });
      if (row === undefined) throw notFound('Service');
      return toBody(row);
    },
  );

  app.post(
    '/services',
    {
      config: { permission: 'write:services' },
      schema: {
        tags: ['Services'],
        summary: 'Add a service to the catalog',
        operationId: 'createService',
        description: '201 with the service and a Location header; 409 SERVICE_EXISTS when the practice already has the name (case-insensitive).',
        headers: IdempotencyKeyHeaders,
        body: ServiceCreate,
        response: { 201: Service, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const details: ErrorDetail[] = [];
      const name = cleanLabel(request.body.name, 'name', details);
      const category = cleanLabel(request.body.category ?? 'General', 'category', details);
      if (details.length > 0) throw validationError(details);
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        const existing = await findByName(tx, name, null);
        if (existing !== undefined) throw serviceExists(existing);
        const { rows } = await tx
          .query<ServiceRow>(
            `INSERT INTO services (practice_id, name, category, duration_minutes, price_cents, active)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
            [principal.practiceId, name, category, request.body.durationMinutes, request.body.priceCents, request.body.active ?? true],
          )
          .catch(async (error: unknown) => {
            if (isUniqueViolation(error)) throw serviceExists('(created concurrently)');
            throw error;
          });
        const created = rows[0]!;
        await recordAudit(tx, {
          ...requestOrigin(request),
          practiceId: principal.practiceId,
          actorType: principal.kind,
          actorId: principal.id,
          action: 'service.create',
          resourceType: 'service',
          resourceIds: [created.id],
          outcome: 'success',
        });
        await app.events.record(tx, serviceEvent(principal, 'service.created', created, Object.keys(request.body).sort()));
        return created;
      });
      reply.code(201).header('location', `${app.prefix}/services/${row.id}`);
      return toBody(row);
    },
  );

  app.patch(
    '/services/:serviceId',
    {
      config: { permission: 'write:services' },
      schema: {
        tags: ['Services'],
        summary: 'Change a service (active: false retires it)',
        operationId: 'updateService',
        description: 'Partial update. A retired service stays on record and on its past appointments but cannot be booked (422 SERVICE_INACTIVE). Price changes never alter booked appointments.',
        params: ServiceIdParams,
        body: ServiceUpdate,
        response: { 200: Service, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { serviceId } = request.params;
      if (!isUuid(serviceId)) throw notFound('Service');
      const details: ErrorDetail[] = [];
      const body = request.body;
      const name = body.name === undefined ? null : cleanLabel(body.name, 'name', details);
      const category = body.category === undefined ? null : cleanLabel(body.category, 'category', details);
      if (details.length > 0) throw validationError(details);
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        if (name !== null) {
          const existing = await findByName(tx, name, serviceId);
          if (existing !== undefined) throw serviceExists(existing);
        }
        const { rows } = await tx
          .query<ServiceRow>(
            `UPDATE services SET
               name = coalesce($2, name), category = coalesce($3, category),
               duration_minutes = coalesce($4, duration_minutes), price_cents = coalesce($5, price_cents),
               active = coalesce($6, active), updated_at = now()
             WHERE id = $1 RETURNING ${COLUMNS}`,
            [serviceId, name, category, body.durationMinutes ?? null, body.priceCents ?? null, body.active ?? null],
          )
          .catch(async (error: unknown) => {
            if (isUniqueViolation(error)) throw serviceExists('(renamed concurrently)');
            throw error;
          });
        const updated = rows[0];
        if (updated === undefined) throw notFound('Service');
        await recordAudit(tx, {
          ...requestOrigin(request),
          practiceId: principal.practiceId,
          actorType: principal.kind,
          actorId: principal.id,
          action: 'service.update',
          resourceType: 'service',
          resourceIds: [updated.id],
          outcome: 'success',
          details: { fields: Object.keys(body).sort() },
        });
        await app.events.record(tx, serviceEvent(principal, 'service.updated', updated, Object.keys(body).sort()));
        return updated;
      });
      return toBody(row);
    },
  );
}
