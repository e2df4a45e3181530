// /v2/openapi.json documents the subscription routes and every event type's payload (x-webhooks);
// /versions shows webhooks as available in v2.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { openScratchPglite } from '../helpers/databases.js';
import { EVENT_TYPE_NAMES } from '../../src/events/catalog.js';
import { startTestApp } from '../helpers/app.js';

const db = await openScratchPglite();
after(() => db.close());
const { app } = await startTestApp(db);

test('/v2/openapi.json has the webhook routes, each needing admin:webhooks, and x-webhooks for every event type', async () => {
  const doc = (await app.inject({ url: '/v2/openapi.json' })).json() as {
    paths: Record<string, Record<string, { tags: string[]; responses: Record<string, unknown> }>>;
    'x-webhooks': Record<string, { post: { requestBody: { content: Record<string, { schema: { properties: Record<string, { const?: string; enum?: string[] }> } }> }; parameters: Array<{ name: string }> } }>;
  };
  assert.ok(doc.paths['/webhooks']?.post?.responses['201']);
  assert.ok(doc.paths['/webhooks/{webhookId}/deliveries']?.get?.responses['200']);
  assert.deepEqual(Object.keys(doc['x-webhooks']).sort(), [...EVENT_TYPE_NAMES].sort());
  for (const type of EVENT_TYPE_NAMES) {
    const post = doc['x-webhooks'][type]!.post;
    const schema = post.requestBody.content['application/json']!.schema;
    const declared = schema.properties.type!;
    assert.equal(declared.const ?? declared.enum?.[0], type);
    assert.deepEqual(post.parameters.map((p) => p.name), ['webhook-id', 'webhook-timestamp', 'webhook-signature']);
  }
  const routes = app.routeTable.filter((route) => route.url.startsWith('/v2/webhooks'));
  assert.ok(routes.length >= 9);
  for (const route of routes) assert.equal(route.config.permission, 'admin:webhooks', `${route.method} ${route.url}`);
  const v1 = (await app.inject({ url: '/v1/openapi.json' })).json() as Record<string, unknown>;
  assert.equal('x-webhooks' in v1, false);
});

test('/versions shows webhooks available in v2', async () => {
  const body = (await app.inject({ url: '/versions' })).json() as { data: Array<{ version: string; features: string[]; featureStatus: Record<string, string> }> };
  const v2 = body.data.find((v) => v.version === 'v2')!;
  assert.equal(v2.featureStatus.webhooks, 'available');
  assert.deepEqual(Object.keys(v2.featureStatus).sort(), [...v2.features].sort());
});
