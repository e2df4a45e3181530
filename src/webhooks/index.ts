// Webhooks wired into an app: the fan-out in the relay's sequencing transaction, the outbox
// keeping events that still have a pending delivery, the delivery worker (woken by new positions
// on every instance), the /v2/webhooks routes and each event type's payload in /v2/openapi.json.
import type { FastifyInstance } from 'fastify';
import { EVENT_TYPE_NAMES } from '../events/catalog.js';
import { eventEnvelopeSchema } from '../events/payloads.js';
import { systemResolver, type Resolver } from './address.js';
import { fanOut, PENDING_DELIVERY_KEEPS_EVENT } from './fanout.js';
import { webhookRoutes } from './routes.js';
import { SecretVault } from './signing.js';
import { DeliveryWorker } from './worker.js';

export interface WebhookOptions {
  /** Host name resolution for the SSRF guard (tests inject names that resolve to private addresses). */
  resolve?: Resolver;
}

/** Longest a shutdown waits for deliveries in flight; the rest are taken again after their lease. */
const SHUTDOWN_WAIT_MS = 5000;

/** Registers everything; returns the stop function for the app's close (before the relay and the database). */
export async function registerWebhooks(app: FastifyInstance, options: WebhookOptions = {}): Promise<{ stop: () => Promise<void>; worker: DeliveryWorker | null }> {
  const config = app.config.events.webhooks;
  const resolve = options.resolve ?? systemResolver;
  const vault = new SecretVault(app.config.encryptionKey);
  app.outboxRelay.onSequenced(async (tx, range) => {
    await fanOut(tx, range);
  });
  app.outboxRelay.keepWhile(PENDING_DELIVERY_KEEPS_EVENT);
  const worker = config.workerEnabled
    ? new DeliveryWorker({ db: app.db, events: app.events, audit: app.auditWriter, vault, resolve, log: app.log, config })
    : null;
  const unsubscribe = worker ? app.outboxRelay.onPositions(() => worker.kick()) : () => {};
  await app.register(webhookRoutes, { prefix: '/v2', vault, resolve, wake: () => worker?.kick() });
  app.openApiExtensions.v2['x-webhooks'] = webhookDocumentation();
  worker?.start();
  return {
    worker,
    stop: async () => {
      unsubscribe();
      await worker?.stop(Math.min(SHUTDOWN_WAIT_MS, app.config.shutdownGraceMs));
    },
  };
}

/**
 * Each event type as the POST a receiver gets, in the shape of OpenAPI 3.1's `webhooks` (the
 * document is 3.0, which has no such field, hence the `x-` extension).
 */
function webhookDocumentation(): Record<string, unknown> {
  const signatureHeaders = {
    'webhook-id': { required: true, schema: { type: 'string' }, description: 'The event id: the same on every retry, deduplicate by it' },
    'webhook-timestamp': { required: true, schema: { type: 'integer' }, description: 'Unix seconds when this attempt was signed' },
    'webhook-signature': { required: true, schema: { type: 'string' }, description: '`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several space-separated during a secret rotation' },
  };
  return Object.fromEntries(
    EVENT_TYPE_NAMES.map((type) => [
      type,
      {
        post: {
          summary: type,
          operationId: `webhook_${type.replace('.', '_')}`,
          parameters: Object.entries(signatureHeaders).map(([name, header]) => ({ name, in: 'header', ...header })),
          requestBody: { required: true, content: { 'application/json': { schema: JSON.parse(JSON.stringify(eventEnvelopeSchema(type))) } } },
          responses: {
            '2XX': { description: 'Delivered' },
            '410': { description: 'Gone: the subscription is disabled at once' },
            default: { description: 'Any other answer, a timeout or a redirect: retried on the schedule in docs/events.md' },
          },
        },
      },
    ]),
  );
}
