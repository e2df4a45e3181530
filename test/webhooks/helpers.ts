// Apps, subscriptions and waits for the webhook tests.
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { testConfig, type Config, type WebhookConfig } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';
import type { Resolver } from '../../src/webhooks/address.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

/** Fast retries and polls, loopback receivers allowed: the test's own 127.0.0.1 server. */
export const FAST: Partial<WebhookConfig> = {
  allowLoopback: true,
  retryScheduleMs: [100, 200, 400, 800],
  pollMs: 50,
  timeoutMs: 400,
  leaseMs: 2000,
};

export function withWebhooks(webhooks: Partial<WebhookConfig>, extra: Partial<Config> = {}): Partial<Config> {
  const base = testConfig().events;
  return { ...extra, events: { ...base, webhooks: { ...base.webhooks, ...webhooks } } };
}

export function startWebhookApp(db: Database, webhooks: Partial<WebhookConfig> = FAST, resolve?: Resolver, extra: Partial<Config> = {}): Promise<TestApp> {
  return startTestApp(db, withWebhooks(webhooks, extra), resolve ? { webhooks: { resolve } } : {});
}

export interface Created {
  id: string;
  secret: string;
  status: string;
  eventTypes: string[];
}

export async function subscribe(app: FastifyInstance, headers: Record<string, string>, body: Record<string, unknown>): Promise<Created> {
  const response = await app.inject({ method: 'POST', url: '/v2/webhooks', headers, payload: { description: 'test', ...body } });
  assert.equal(response.statusCode, 201, response.body);
  return response.json();
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
  latencyMs: number | null;
  error: string | null;
  nextAttemptAt: string | null;
}

export async function deliveries(app: FastifyInstance, headers: Record<string, string>, subscriptionId: string, query = ''): Promise<DeliveryView[]> {
  const response = await app.inject({ url: `/v2/webhooks/${subscriptionId}/deliveries?limit=100${query}`, headers });
  assert.equal(response.statusCode, 200, response.body);
  return (response.json() as { data: DeliveryView[] }).data;
}

/** Every delivery row of a subscription, straight from the table (all attempts' bookkeeping). */
export async function deliveryRows(db: Database, subscriptionId: string) {
  return withSystem(db, async (tx) =>
    (await tx.query<{ id: string; status: string; attempts: number; event_id: string }>(
      'SELECT id, status, attempts, event_id FROM webhook_deliveries WHERE subscription_id = $1 ORDER BY occurred_at',
      [subscriptionId],
    )).rows,
  );
}
