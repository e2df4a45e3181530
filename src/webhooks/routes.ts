// /v2/webhooks: a practice's webhook subscriptions and their deliveries (admin:webhooks, ADMIN
// only). Every query runs in the caller's practice scope, so another practice's subscription is a
// 404 like an unknown one. A secret is shown once (create, rotate) and stored sealed.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { recordAudit, requestOrigin } from '../audit/audit.js';
import { auditActor, principalOf, type Principal } from '../auth/guard.js';
import type { Queryable } from '../db/database.js';
import { withPractice } from '../db/scope.js';
import { AppError, conflict, notFound } from '../http/errors.js';
import { errorResponses } from '../http/openapi.js';
import { isUuid, pagination } from '../http/pagination.js';
import type { Resolver } from './address.js';
import { checkEventTypes, checkTargetUrl } from './rules.js';
import {
  CreatedWebhookSubscription,
  DeliveryIdParams,
  DeliveryList,
  DeliveryListQuery,
  RotatedSecret,
  TestSent,
  WebhookCreate,
  WebhookDelivery,
  WebhookIdParams,
  WebhookList,
  WebhookListQuery,
  WebhookSubscription,
  WebhookUpdate,
  type WebhookDelivery as DeliveryBody,
  type WebhookSubscription as SubscriptionBody,
} from './schema.js';
import { generateWebhookSecret, type SecretVault } from './signing.js';

export interface WebhookRouteOptions {
  vault: SecretVault;
  resolve: Resolver;
  /** Wakes this instance's worker (a test delivery is due at once). */
  wake: () => void;
}

interface SubscriptionRow {
  id: string;
  url: string;
  description: string;
  event_types: string[];
  include_data: boolean;
  status: 'active' | 'disabled';
  disabled_reason: string | null;
  disabled_at: Date | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const SUBSCRIPTION_COLUMNS = `id, url, description, event_types, include_data, status, disabled_reason, disabled_at,
  CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at, created_at, updated_at`;

const iso = (value: Date | null) => (value === null ? null : new Date(value).toISOString());

const toSubscription = (row: SubscriptionRow): SubscriptionBody => ({
  id: row.id,
  url: row.url,
  description: row.description,
  eventTypes: row.event_types,
  includeData: row.include_data,
  status: row.status,
  disabledReason: row.disabled_reason,
  disabledAt: iso(row.disabled_at),
  previousSecretExpiresAt: iso(row.previous_secret_expires_at),
  createdAt: iso(row.created_at)!,
  updatedAt: iso(row.updated_at)!,
});

interface DeliveryRow {
  id: string;
  subscription_id: string;
  event_id: string;
  event_type: string;
  occurred_at: Date;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: Date | null;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_latency_ms: number | null;
  last_error: string | null;
  last_response: string | null;
  delivered_at: Date | null;
  created_at: Date;
}

const DELIVERY_COLUMNS = `id, subscription_id, event_id, event_type, occurred_at, status, attempts,
  CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, last_attempt_at, last_status_code,
  last_latency_ms, last_error, last_response, delivered_at, created_at`;

const toDelivery = (row: DeliveryRow): DeliveryBody => ({
  id: row.id,
  subscriptionId: row.subscription_id,
  eventId: row.event_id,
  eventType: row.event_type,
  occurredAt: iso(row.occurred_at)!,
  status: row.status,
  attempts: row.attempts,
  nextAttemptAt: iso(row.next_attempt_at),
  lastAttemptAt: iso(row.last_attempt_at),
  responseStatus: row.last_status_code,
  latencyMs: row.last_latency_ms,
  error: row.last_error,
  response: row.last_response,
  deliveredAt: iso(row.delivered_at),
  createdAt: iso(row.created_at)!,
});

const webhookNotFound = () => notFound('Webhook subscription');

async function findSubscription(tx: Queryable, id: string): Promise<SubscriptionRow> {
  const { rows } = await tx.query<SubscriptionRow>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1`, [id]);
  if (rows[0] === undefined) throw webhookNotFound();
  return rows[0];
}

function audited(request: FastifyRequest, principal: Principal, action: string, ids: string[], details: Record<string, unknown> = {}) {
  return {
    ...requestOrigin(request),
    ...auditActor(principal),
    action,
    resourceType: 'webhook_subscription',
    resourceIds: ids,
    outcome: 'success' as const,
    details,
  };
}

const TAGS = ['Webhooks'];

export async function webhookRoutes(fastify: FastifyInstance, options: WebhookRouteOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { db } = app;
  const { vault, resolve, wake } = options;
  const { allowLoopback, secretGraceMs } = app.config.events.webhooks;
  app.addSchema(WebhookSubscription);
  app.addSchema(WebhookDelivery);
  const config = { permission: 'admin:webhooks' };

  app.post(
    '/webhooks',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Subscribe a receiver URL to events',
        operationId: 'createWebhook',
        description:
          '201 with the subscription, its signing `secret` (shown only in this response) and a Location header. Deliveries are signed per Standard Webhooks (docs/events.md). An unknown event type is a 400 naming it; types whose read permission you lack are a 403.',
        body: WebhookCreate,
        response: { 201: CreatedWebhookSubscription, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const eventTypes = checkEventTypes(body.eventTypes, principal.permissions);
      const url = await checkTargetUrl(body.url, resolve, allowLoopback);
      const id = randomUUID();
      const secret = generateWebhookSecret();
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<SubscriptionRow>(
          `INSERT INTO webhook_subscriptions (id, practice_id, url, description, event_types, granted_permissions, include_data, secret_sealed, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${SUBSCRIPTION_COLUMNS}`,
          [id, principal.practiceId, url, body.description ?? '', eventTypes, principal.permissions, body.includeData ?? false, vault.seal(secret, id), `${principal.kind}:${principal.id}`],
        );
        await recordAudit(tx, audited(request, principal, 'webhook.create', [id], { eventTypes, includeData: body.includeData ?? false }));
        return rows[0]!;
      });
      return reply.code(201).header('location', `/v2/webhooks/${id}`).send({ ...toSubscription(row), secret });
    },
  );

  app.get(
    '/webhooks',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'List webhook subscriptions (never their secrets)',
        operationId: 'listWebhooks',
        querystring: WebhookListQuery,
        response: { 200: WebhookList, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { page, limit } = request.query;
      return withPractice(db, principal.practiceId, async (tx) => {
        const { rows: count } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_subscriptions');
        const { rows } = await tx.query<SubscriptionRow>(
          `SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions
            ORDER BY webhook_subscriptions.created_at DESC, webhook_subscriptions.id LIMIT $1 OFFSET $2`,
          [limit, (page - 1) * limit],
        );
        return { data: rows.map(toSubscription), pagination: pagination(page, limit, count[0]?.n ?? 0) };
      });
    },
  );

  app.get(
    '/webhooks/:webhookId',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Get a webhook subscription',
        operationId: 'getWebhook',
        params: WebhookIdParams,
        response: { 200: WebhookSubscription, ...errorResponses(401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      return toSubscription(await withPractice(db, principal.practiceId, (tx) => findSubscription(tx, webhookId)));
    },
  );

  app.patch(
    '/webhooks/:webhookId',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Change a webhook subscription (status: active re-enables it)',
        operationId: 'updateWebhook',
        description: 'Partial update. Setting eventTypes records your permissions as the ones the subscription receives under.',
        params: WebhookIdParams,
        body: WebhookUpdate,
        response: { 200: WebhookSubscription, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      const body = request.body;
      const eventTypes = body.eventTypes === undefined ? null : checkEventTypes(body.eventTypes, principal.permissions);
      const url = body.url === undefined ? null : await checkTargetUrl(body.url, resolve, allowLoopback);
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<SubscriptionRow>(
          `UPDATE webhook_subscriptions SET
             url = coalesce($2, url), description = coalesce($3, description),
             event_types = coalesce($4, event_types), granted_permissions = CASE WHEN $4::text[] IS NULL THEN granted_permissions ELSE $5 END,
             include_data = coalesce($6, include_data),
             status = coalesce($7, status),
             disabled_reason = CASE $7 WHEN 'active' THEN NULL WHEN 'disabled' THEN 'disabled by an administrator' ELSE disabled_reason END,
             disabled_at = CASE $7 WHEN 'active' THEN NULL WHEN 'disabled' THEN coalesce(disabled_at, now()) ELSE disabled_at END,
             failing_since = CASE WHEN $7 = 'active' THEN NULL ELSE failing_since END,
             updated_at = now()
           WHERE id = $1 RETURNING ${SUBSCRIPTION_COLUMNS}`,
          [webhookId, url, body.description ?? null, eventTypes, principal.permissions, body.includeData ?? null, body.status ?? null],
        );
        if (rows[0] === undefined) throw webhookNotFound();
        await recordAudit(tx, audited(request, principal, 'webhook.update', [webhookId], { fields: Object.keys(body).sort() }));
        return rows[0];
      });
      if (row.status === 'active') wake(); // re-enabled: its waiting deliveries resume
      return toSubscription(row);
    },
  );

  app.delete(
    '/webhooks/:webhookId',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Delete a webhook subscription and its deliveries',
        operationId: 'deleteWebhook',
        params: WebhookIdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      await withPractice(db, principal.practiceId, async (tx) => {
        const { rowCount } = await tx.query('DELETE FROM webhook_subscriptions WHERE id = $1', [webhookId]);
        if (rowCount === 0) throw webhookNotFound();
        await recordAudit(tx, audited(request, principal, 'webhook.delete', [webhookId]));
      });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhooks/:webhookId/rotate-secret',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Rotate the signing secret',
        operationId: 'rotateWebhookSecret',
        description:
          'A new secret, shown only in this response. Until previousSecretExpiresAt (WEBHOOK_SECRET_GRACE_HOURS, default 24) every delivery carries a signature with each secret, so the receiver can switch without losing one.',
        params: WebhookIdParams,
        response: { 200: RotatedSecret, ...errorResponses(401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      const secret = generateWebhookSecret();
      const expiresAt = await withPractice(db, principal.practiceId, async (tx) => {
        const { rows } = await tx.query<{ expires_at: Date }>(
          `UPDATE webhook_subscriptions SET previous_secret_sealed = secret_sealed, secret_sealed = $2,
                  previous_secret_expires_at = now() + $3 * interval '1 millisecond', updated_at = now()
            WHERE id = $1 RETURNING previous_secret_expires_at AS expires_at`,
          [webhookId, vault.seal(secret, webhookId), secretGraceMs],
        );
        if (rows[0] === undefined) throw webhookNotFound();
        await recordAudit(tx, audited(request, principal, 'webhook.rotate_secret', [webhookId], { graceMs: secretGraceMs }));
        return rows[0].expires_at;
      });
      return { id: webhookId, secret, previousSecretExpiresAt: iso(expiresAt)! };
    },
  );

  app.post(
    '/webhooks/:webhookId/test',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Send a webhook.test event to this subscription only',
        operationId: 'testWebhook',
        description: '202: the delivery is queued; follow it in the delivery list. 409 WEBHOOK_DISABLED for a disabled subscription.',
        params: WebhookIdParams,
        response: { 202: TestSent, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      const sent = await withPractice(db, principal.practiceId, async (tx) => {
        const subscription = await findSubscription(tx, webhookId);
        if (subscription.status !== 'active') throw conflict('WEBHOOK_DISABLED', 'The subscription is disabled; re-enable it with PATCH {"status":"active"} first');
        const [eventId] = await app.events.record(tx, {
          practiceId: principal.practiceId,
          type: 'webhook.test',
          resourceId: webhookId,
          actor: { type: principal.kind, id: principal.id },
        });
        // Straight to this subscription: the fan-out never sends webhook.test to anyone else.
        const { rows } = await tx.query<{ id: string }>(
          `INSERT INTO webhook_deliveries (practice_id, subscription_id, event_id, event_type, occurred_at)
           SELECT practice_id, $1, id, type, occurred_at FROM outbox_events WHERE id = $2 RETURNING id`,
          [webhookId, eventId],
        );
        await recordAudit(tx, audited(request, principal, 'webhook.test', [webhookId], { eventId }));
        return { deliveryId: rows[0]!.id, eventId: eventId! };
      });
      wake();
      return reply.code(202).send(sent);
    },
  );

  app.get(
    '/webhooks/:webhookId/deliveries',
    {
      config,
      schema: {
        tags: TAGS,
        summary: "List a subscription's deliveries, newest first",
        operationId: 'listWebhookDeliveries',
        description: 'Status, attempts, the last response code and latency, why the last attempt failed, and when the next is due. Filter by status.',
        params: WebhookIdParams,
        querystring: DeliveryListQuery,
        response: { 200: DeliveryList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { webhookId } = request.params;
      if (!isUuid(webhookId)) throw webhookNotFound();
      const { page, limit, status } = request.query;
      return withPractice(db, principal.practiceId, async (tx) => {
        await findSubscription(tx, webhookId);
        const filter = [webhookId, status ?? null];
        const where = 'subscription_id = $1 AND ($2::text IS NULL OR status = $2)';
        const { rows: count } = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE ${where}`, filter);
        const { rows } = await tx.query<DeliveryRow>(
          `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ${where}
            ORDER BY webhook_deliveries.created_at DESC, webhook_deliveries.occurred_at DESC, webhook_deliveries.id LIMIT $3 OFFSET $4`,
          [...filter, limit, (page - 1) * limit],
        );
        return { data: rows.map(toDelivery), pagination: pagination(page, limit, count[0]?.n ?? 0) };
      });
    },
  );

  app.post(
    '/webhooks/:webhookId/deliveries/:deliveryId/redeliver',
    {
      config,
      schema: {
        tags: TAGS,
        summary: 'Attempt a delivery again now',
        operationId: 'redeliverWebhook',
        description:
          '202 with the delivery, queued again with a fresh retry schedule (same event, same webhook-id). 409 DELIVERY_PENDING while it is still being attempted, WEBHOOK_DISABLED for a disabled subscription.',
        params: DeliveryIdParams,
        response: { 202: WebhookDelivery, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { webhookId, deliveryId } = request.params;
      if (!isUuid(webhookId) || !isUuid(deliveryId)) throw notFound('Delivery');
      const row = await withPractice(db, principal.practiceId, async (tx) => {
        const subscription = await findSubscription(tx, webhookId);
        if (subscription.status !== 'active') throw conflict('WEBHOOK_DISABLED', 'The subscription is disabled; re-enable it first');
        const { rows } = await tx.query<DeliveryRow>(
          `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
            WHERE id = $1 AND subscription_id = $2 AND status <> 'pending' RETURNING ${DELIVERY_COLUMNS}`,
          [deliveryId, webhookId],
        );
        if (rows[0] === undefined) {
          const { rows: existing } = await tx.query('SELECT 1 FROM webhook_deliveries WHERE id = $1 AND subscription_id = $2', [deliveryId, webhookId]);
          if (existing.length === 0) throw notFound('Delivery');
          throw new AppError('DELIVERY_PENDING', 409, 'The delivery is still pending; it is attempted on its schedule');
        }
        await recordAudit(tx, audited(request, principal, 'webhook.redeliver', [webhookId], { deliveryId }));
        return rows[0];
      });
      wake();
      return reply.code(202).send(toDelivery(row));
    },
  );
}
