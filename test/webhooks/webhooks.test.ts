// Webhooks end to end through real sockets (issue 12 items 2, 3, 8): a receiver on 127.0.0.1
// started here, signatures verified with the independent `standardwebhooks` package, retries,
// timeouts, 500 and 410 answers, SSRF refusals at creation and at delivery, practice isolation,
// permissions, and secrets kept out of the logs. On PGlite and, with DATABASE_URL, PostgreSQL.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { withSystem } from '../../src/db/scope.js';
import type { Resolver } from '../../src/webhooks/address.js';
import { book, createService, hoursFromNow, insertPatient } from '../appointments/scheduling-helpers.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice, type TestPractice } from '../helpers/identity.js';
import { waitFor } from '../helpers/process.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { deliveries, deliveryRows, FAST, startWebhookApp, subscribe } from './helpers.js';

interface Envelope {
  id: string;
  type: string;
  practiceId: string;
  occurredAt: string;
  data: Record<string, unknown>;
  resource?: Record<string, unknown>;
}

const bodyOf = (received: { body: string }) => JSON.parse(received.body) as Envelope;
const headersOf = (received: { headers: Record<string, unknown> }) => ({
  'webhook-id': String(received.headers['webhook-id']),
  'webhook-timestamp': String(received.headers['webhook-timestamp']),
  'webhook-signature': String(received.headers['webhook-signature']),
});
const verifies = (secret: string, received: { body: string; headers: Record<string, unknown> }) => {
  try {
    new Webhook(secret).verify(received.body, headersOf(received));
    return true;
  } catch {
    return false;
  }
};

/** A name table the tests can change between creation and delivery (DNS rebinding). */
function mutableResolver(table: Record<string, string[]>): Resolver {
  return async (host) => {
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

for (const target of databaseTargets()) {
  describe(`webhooks on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const names: Record<string, string[]> = { 'rebind.example.test': ['127.0.0.1'] };
    const testApp = await startWebhookApp(db, FAST, mutableResolver(names));
    const { app } = testApp;
    const secrets: string[] = [];
    const practice = async () => createTestPractice(app, 'Webhook Spa');
    const admin = (p: TestPractice) => p.users.ADMIN.headers;
    const newSubscription = async (p: TestPractice, receiver: Receiver, body: Record<string, unknown> = {}) => {
      const created = await subscribe(app, admin(p), { url: receiver.url, eventTypes: ['*'], ...body });
      secrets.push(created.secret);
      return created;
    };
    const ofType = (receiver: Receiver, type: string) => receiver.received.filter((r) => bodyOf(r).type === type);

    test('create answers 201 with Location and a Standard Webhooks secret shown once; get and list never show it', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const response = await app.inject({
        method: 'POST',
        url: '/v2/webhooks',
        headers: admin(p),
        payload: { url: receiver.url, eventTypes: ['appointment.*', 'patient.created'], description: 'booking widget' },
      });
      assert.equal(response.statusCode, 201, response.body);
      const created = response.json() as { id: string; secret: string; eventTypes: string[]; status: string; includeData: boolean };
      secrets.push(created.secret);
      assert.equal(response.headers.location, `/v2/webhooks/${created.id}`);
      assert.match(created.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/);
      assert.equal(Buffer.from(created.secret.slice(6), 'base64').length, 32);
      assert.deepEqual([created.status, created.includeData, created.eventTypes], ['active', false, ['appointment.*', 'patient.created']]);
      const read = await app.inject({ url: `/v2/webhooks/${created.id}`, headers: admin(p) });
      assert.equal(read.statusCode, 200);
      assert.equal(read.body.includes(created.secret.slice(6)), false);
      assert.equal('secret' in read.json(), false);
      const list = await app.inject({ url: '/v2/webhooks?limit=1', headers: admin(p) });
      assert.deepEqual(list.json().pagination, { page: 1, limit: 1, total: 1, totalPages: 1 });
      assert.equal(list.body.includes(created.secret.slice(6)), false);
      const stored = await withSystem(db, async (tx) => (await tx.query<{ secret_sealed: string }>('SELECT secret_sealed FROM webhook_subscriptions WHERE id = $1', [created.id])).rows[0]!);
      assert.equal(stored.secret_sealed.includes(created.secret.slice(6)), false, 'the secret is stored sealed');
    });

    test('an unknown event type is a 400 naming it', async () => {
      const p = await practice();
      const response = await app.inject({ method: 'POST', url: '/v2/webhooks', headers: admin(p), payload: { url: 'http://127.0.0.1:9/x', eventTypes: ['appointment.booked', 'appointment.boked', 'invoice.*'] } });
      assert.equal(response.statusCode, 400);
      assert.deepEqual(response.json().error.details.map((d: { message: string }) => d.message), ['unknown event type "appointment.boked"', 'unknown event type "invoice.*"']);
    });

    test('a booking arrives as appointment.booked, signed so that standardwebhooks verifies it, with ids and no PHI values', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const sub = await newSubscription(p, receiver, { eventTypes: ['appointment.*'] });
      const service = await createService(app, admin(p));
      const patientId = await insertPatient(db, p.id, { firstName: 'Zelda', lastName: 'Quinlan' });
      const booked = await book(app, admin(p), { patientId, practitionerId: p.users.PRACTITIONER.id, serviceId: service.id, startTime: hoursFromNow(50) });
      assert.equal(booked.statusCode, 201, booked.body);
      const [received] = await waitFor('appointment.booked', () => (receiver.received.length > 0 ? receiver.received : null));
      const body = bodyOf(received!);
      assert.equal(body.type, 'appointment.booked');
      assert.equal(body.data.resourceId, booked.json().id);
      assert.equal(body.data.patientId, patientId);
      assert.equal(received!.headers['webhook-id'], body.id);
      assert.ok(verifies(sub.secret, received!), 'standardwebhooks verifies the signature');
      assert.equal(verifies(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, received!), false, 'another secret does not');
      assert.equal(/Zelda|Quinlan/.test(received!.body), false, 'no PHI values');
      assert.equal('resource' in body, false);
      assert.equal(ofType(receiver, 'service.created').length, 0, 'service.created was not asked for');
      const [delivery] = await waitFor('delivered status', async () => {
        const list = await deliveries(app, admin(p), sub.id, '&status=delivered');
        return list.length === 1 ? list : null;
      });
      assert.deepEqual([delivery!.eventId, delivery!.attempts, delivery!.responseStatus], [body.id, 1, 200]);
      assert.ok(delivery!.latencyMs !== null && delivery!.latencyMs >= 0);
    });

    test('rotating the secret: during the grace period both the old and the new secret verify; after it only the new', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const sub = await newSubscription(p, receiver);
      const rotated = await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/rotate-secret`, headers: admin(p) });
      assert.equal(rotated.statusCode, 200, rotated.body);
      const { secret, previousSecretExpiresAt } = rotated.json() as { secret: string; previousSecretExpiresAt: string };
      secrets.push(secret);
      assert.notEqual(secret, sub.secret);
      assert.ok(Date.parse(previousSecretExpiresAt) > Date.now() + 23 * 3_600_000);
      await createService(app, admin(p));
      const [during] = await waitFor('a delivery after rotation', () => (receiver.received.length > 0 ? receiver.received : null));
      assert.equal(String(during!.headers['webhook-signature']).split(' ').length, 2);
      assert.ok(verifies(sub.secret, during!), 'the old secret verifies during the grace period');
      assert.ok(verifies(secret, during!), 'the new secret verifies');
      await withSystem(db, (tx) => tx.query("UPDATE webhook_subscriptions SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1", [sub.id]));
      await createService(app, admin(p));
      const after = await waitFor('a delivery after the grace period', () => receiver.received[1]);
      assert.equal(verifies(sub.secret, after), false, 'the old secret no longer verifies');
      assert.ok(verifies(secret, after));
    });

    test('a receiver down for a while, then back: every event arrives, none twice after dedup by webhook-id', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.*'] });
      await receiver.down();
      const created = [];
      for (let i = 0; i < 6; i++) created.push((await createService(app, admin(p))).id);
      await waitFor('every delivery failed once', async () => {
        const rows = await deliveryRows(db, sub.id);
        return rows.length === 6 && rows.every((row) => row.attempts >= 1);
      });
      const failed = await deliveries(app, admin(p), sub.id);
      assert.ok(failed.every((d) => d.status === 'pending' && /ECONNREFUSED/.test(d.error ?? '') && d.nextAttemptAt !== null), JSON.stringify(failed));
      await receiver.up();
      await waitFor('all delivered', async () => (await deliveryRows(db, sub.id)).every((row) => row.status === 'delivered'), { timeoutMs: 10_000 });
      const ids = new Set(receiver.received.map((r) => String(r.headers['webhook-id'])));
      assert.equal(ids.size, 6);
      assert.deepEqual(new Set(receiver.received.map((r) => bodyOf(r).data.resourceId)), new Set(created));
      for (const r of receiver.received) assert.equal(r.headers['webhook-id'], bodyOf(r).id, 'the id is stable across retries');
    });

    test('a receiver that times out is a failed attempt with the reason, retried until it answers', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      let slow = true;
      receiver.respond = () => (slow ? { status: 200, delayMs: 1500 } : { status: 204 });
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await createService(app, admin(p));
      const [timedOut] = await waitFor('a timed-out attempt', async () => {
        const list = await deliveries(app, admin(p), sub.id);
        return list[0]?.error?.startsWith('timed out') ? list : null;
      });
      assert.equal(timedOut!.error, `timed out after ${FAST.timeoutMs} ms`);
      assert.equal(timedOut!.responseStatus, null);
      slow = false;
      const [done] = await waitFor('delivered after the receiver recovers', async () => {
        const list = await deliveries(app, admin(p), sub.id, '&status=delivered');
        return list.length === 1 ? list : null;
      }, { timeoutMs: 10_000 });
      assert.ok(done!.attempts >= 2);
      assert.equal(done!.responseStatus, 204);
    });

    test('a receiver answering 500 is retried on the schedule, then the delivery is failed with the status and a short snippet', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      receiver.respond = () => ({ status: 500, body: `boom ${'x'.repeat(10_000)}` });
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await createService(app, admin(p));
      const [failed] = await waitFor('failed after the last attempt', async () => {
        const list = await deliveries(app, admin(p), sub.id, '&status=failed');
        return list.length === 1 ? list : null;
      }, { timeoutMs: 10_000 });
      assert.equal(failed!.attempts, FAST.retryScheduleMs!.length + 1);
      assert.equal(failed!.responseStatus, 500);
      assert.equal(failed!.nextAttemptAt, null);
      assert.equal(receiver.received.length, FAST.retryScheduleMs!.length + 1);
      const view = (await app.inject({ url: `/v2/webhooks/${sub.id}/deliveries`, headers: admin(p) })).json().data[0] as { response: string };
      assert.ok(view.response.startsWith('boom xxx') && view.response.length <= 256);
    });

    test('a receiver answering 410 Gone disables its subscription at once; the admin is told by audit, a warn line and a webhook.disabled event', async () => {
      const p = await practice();
      const gone = await startReceiver();
      gone.respond = () => ({ status: 410 });
      const watcher = await startReceiver();
      const sub = await newSubscription(p, gone, { eventTypes: ['service.created'] });
      const watching = await newSubscription(p, watcher, { eventTypes: ['webhook.*'] });
      await createService(app, admin(p));
      const disabled = await waitFor('disabled', async () => {
        const read = (await app.inject({ url: `/v2/webhooks/${sub.id}`, headers: admin(p) })).json() as { status: string; disabledReason: string };
        return read.status === 'disabled' ? read : null;
      });
      assert.match(disabled.disabledReason, /410/);
      assert.equal(gone.received.length, 1, 'no retry after 410');
      const notice = await waitFor('webhook.disabled delivered to the watching subscription', () => ofType(watcher, 'webhook.disabled')[0]);
      assert.equal(bodyOf(notice).data.resourceId, sub.id);
      assert.equal(bodyOf(notice).data.reason, 'gone');
      assert.ok(verifies(watching.secret, notice));
      const audit = await withSystem(db, async (tx) => (await tx.query<{ action: string }>("SELECT action FROM audit_events WHERE $1 = ANY(resource_ids) AND action = 'webhook.disabled'", [sub.id])).rows);
      assert.equal(audit.length, 1);
      const line = testApp.logs.find((entry) => entry.subscriptionId === sub.id && entry.level === 40);
      assert.ok(line, 'a warn line names the subscription');
      // A disabled subscription gets no new deliveries; re-enabling is an explicit PATCH.
      await createService(app, admin(p));
      await app.outboxRelay.drain();
      assert.equal((await deliveryRows(db, sub.id)).length, 1);
      const enabled = await app.inject({ method: 'PATCH', url: `/v2/webhooks/${sub.id}`, headers: admin(p), payload: { status: 'active' } });
      assert.deepEqual([enabled.json().status, enabled.json().disabledReason], ['active', null]);
    });

    test('a subscription failing without a success for WEBHOOK_DISABLE_AFTER_HOURS is disabled automatically', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      receiver.respond = () => ({ status: 503 });
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await withSystem(db, (tx) => tx.query("UPDATE webhook_subscriptions SET failing_since = now() - interval '121 hours' WHERE id = $1", [sub.id]));
      await createService(app, admin(p));
      const read = await waitFor('auto-disabled', async () => {
        const body = (await app.inject({ url: `/v2/webhooks/${sub.id}`, headers: admin(p) })).json() as { status: string; disabledReason: string };
        return body.status === 'disabled' ? body : null;
      });
      assert.match(read.disabledReason, /failed for 120 hours/);
    });

    test('a success stops the failure clock: a receiver failing now and then is never disabled', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      let calls = 0;
      receiver.respond = () => ({ status: ++calls === 1 ? 500 : 200 });
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await createService(app, admin(p));
      await waitFor('delivered on retry', async () => (await deliveryRows(db, sub.id))[0]?.status === 'delivered');
      const row = await withSystem(db, async (tx) => (await tx.query<{ failing_since: Date | null; status: string }>('SELECT failing_since, status FROM webhook_subscriptions WHERE id = $1', [sub.id])).rows[0]!);
      assert.deepEqual([row.failing_since, row.status], [null, 'active']);
    });

    test('POST /test sends webhook.test to that subscription only; redeliver sends the same event again; a pending one is 409', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const other = await startReceiver();
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await newSubscription(p, other, { eventTypes: ['*'] });
      const sent = await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/test`, headers: admin(p) });
      assert.equal(sent.statusCode, 202, sent.body);
      const { deliveryId, eventId } = sent.json() as { deliveryId: string; eventId: string };
      const first = await waitFor('webhook.test', () => receiver.received[0]);
      assert.deepEqual([bodyOf(first).type, bodyOf(first).id, bodyOf(first).data.resourceId], ['webhook.test', eventId, sub.id]);
      await waitFor('delivered', async () => (await deliveryRows(db, sub.id))[0]?.status === 'delivered');
      const again = await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/deliveries/${deliveryId}/redeliver`, headers: admin(p) });
      assert.equal(again.statusCode, 202, again.body);
      assert.equal(again.json().status, 'pending');
      const second = await waitFor('redelivered', () => receiver.received[1]);
      assert.equal(second.headers['webhook-id'], eventId, 'the same webhook-id: receivers deduplicate');
      await app.outboxRelay.drain();
      assert.equal(ofType(other, 'webhook.test').length, 0, 'no other subscription gets the test');
      receiver.respond = () => ({ status: 200, delayMs: 300 });
      await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/deliveries/${deliveryId}/redeliver`, headers: admin(p) });
      const pending = await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/deliveries/${deliveryId}/redeliver`, headers: admin(p) });
      assert.equal(pending.statusCode, 409);
      assert.equal(pending.json().error.code, 'DELIVERY_PENDING');
    });

    test('includeData: the delivery carries the resource and is audited as a disclosure (ids only); without it, no resource', async () => {
      const p = await practice();
      const withData = await startReceiver();
      const without = await startReceiver();
      const sub = await newSubscription(p, withData, { eventTypes: ['service.created'], includeData: true });
      await newSubscription(p, without, { eventTypes: ['service.created'] });
      const service = await createService(app, admin(p), { name: 'Hydrafacial deluxe' });
      const received = await waitFor('with data', () => withData.received[0]);
      assert.equal(bodyOf(received).resource?.name, 'Hydrafacial deluxe');
      assert.equal('resource' in bodyOf(await waitFor('without data', () => without.received[0])), false);
      const audit = await withSystem(db, async (tx) =>
        (await tx.query<{ resource_type: string; resource_ids: string[]; details: Record<string, unknown> }>(
          "SELECT resource_type, resource_ids, details FROM audit_events WHERE action = 'webhook.disclosure' AND practice_id = $1",
          [p.id],
        )).rows,
      );
      assert.equal(audit.length, 1);
      assert.deepEqual([audit[0]!.resource_type, audit[0]!.resource_ids, audit[0]!.details.subscriptionId], ['service', [service.id], sub.id]);
      assert.equal(JSON.stringify(audit[0]!.details).includes('Hydrafacial'), false);
    });

    test("another practice's admin gets 404 for this practice's subscription on every route, and it never receives that practice's events", async () => {
      const a = await practice();
      const b = await practice();
      const receiver = await startReceiver();
      const sub = await newSubscription(a, receiver, { eventTypes: ['*'] });
      const sent = (await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/test`, headers: admin(a) })).json() as { deliveryId: string };
      await waitFor('delivered', async () => (await deliveryRows(db, sub.id))[0]?.status === 'delivered');
      const attempts = [
        { method: 'GET', url: `/v2/webhooks/${sub.id}` },
        { method: 'PATCH', url: `/v2/webhooks/${sub.id}`, payload: { description: 'mine now' } },
        { method: 'DELETE', url: `/v2/webhooks/${sub.id}` },
        { method: 'POST', url: `/v2/webhooks/${sub.id}/rotate-secret` },
        { method: 'POST', url: `/v2/webhooks/${sub.id}/test` },
        { method: 'GET', url: `/v2/webhooks/${sub.id}/deliveries` },
        { method: 'POST', url: `/v2/webhooks/${sub.id}/deliveries/${sent.deliveryId}/redeliver` },
      ] as const;
      for (const attempt of attempts) {
        const response = await app.inject({ ...attempt, headers: admin(b) });
        assert.equal(response.statusCode, 404, `${attempt.method} ${attempt.url}: ${response.body}`);
      }
      const list = await app.inject({ url: '/v2/webhooks', headers: admin(b) });
      assert.equal(list.json().pagination.total, 0);
      const before = receiver.received.length;
      await createService(app, admin(b));
      await app.outboxRelay.drain();
      await createService(app, admin(a)); // a's own event, to know the worker has caught up
      await waitFor('a\'s own event', () => receiver.received.length === before + 1);
      assert.ok(receiver.received.every((r) => bodyOf(r).practiceId === a.id));
      assert.equal((await app.inject({ url: `/v2/webhooks/${sub.id}`, headers: admin(a) })).json().description, 'test', 'unchanged');
    });

    test('a STAFF user, a MANAGER and an API key without admin:webhooks get 403', async () => {
      const p = await practice();
      for (const user of [p.users.STAFF, p.users.MANAGER]) {
        assert.equal((await app.inject({ url: '/v2/webhooks', headers: user.headers })).statusCode, 403);
        const post = await app.inject({ method: 'POST', url: '/v2/webhooks', headers: user.headers, payload: { url: 'http://127.0.0.1:9/', eventTypes: ['*'] } });
        assert.equal(post.statusCode, 403);
      }
      const key = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin(p), payload: { name: 'pos', permissions: ['read:appointments', 'read:patients'] } });
      const apiKey = { 'x-api-key': key.json().key as string };
      assert.equal((await app.inject({ url: '/v2/webhooks', headers: apiKey })).statusCode, 403);
    });

    test('an API key holding only admin:webhooks may not ask for patient events, and under * receives only webhook events', async () => {
      const p = await practice();
      const key = await app.inject({ method: 'POST', url: '/v1/api-keys', headers: admin(p), payload: { name: 'hooks', permissions: ['admin:webhooks'] } });
      const apiKey = { 'x-api-key': key.json().key as string };
      const receiver = await startReceiver();
      const refused = await app.inject({ method: 'POST', url: '/v2/webhooks', headers: apiKey, payload: { url: receiver.url, eventTypes: ['patient.*'] } });
      assert.equal(refused.statusCode, 403);
      assert.match(refused.json().error.message, /patient\.\*/);
      const sub = await subscribe(app, apiKey, { url: receiver.url, eventTypes: ['*'] });
      secrets.push(sub.secret);
      await createService(app, admin(p));
      await app.outboxRelay.drain();
      assert.equal((await deliveryRows(db, sub.id)).length, 0, 'no service event without read:services');
      await app.inject({ method: 'POST', url: `/v2/webhooks/${sub.id}/test`, headers: apiKey });
      await waitFor('the test event', () => receiver.received[0]);
    });

    test('DNS rebinding: a name that resolved to an allowed address at creation and to a metadata address at delivery is refused at delivery, with the reason', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const url = receiver.url.replace('127.0.0.1', 'rebind.example.test');
      const sub = await subscribe(app, admin(p), { url, eventTypes: ['service.created'] });
      secrets.push(sub.secret);
      names['rebind.example.test'] = ['169.254.169.254'];
      await createService(app, admin(p));
      const [refused] = await waitFor('a refused attempt', async () => {
        const list = await deliveries(app, admin(p), sub.id);
        return list[0]?.error ? list : null;
      });
      assert.equal(refused!.error, 'refused: rebind.example.test resolves to 169.254.169.254 is a metadata address');
      assert.equal(receiver.received.length, 0);
      names['rebind.example.test'] = ['127.0.0.1'];
    });

    test('metadata URLs are refused at creation even with WEBHOOK_ALLOW_LOOPBACK', async () => {
      const p = await practice();
      for (const url of ['http://169.254.169.254/latest/meta-data', 'http://[fd00:ec2::254]/latest/meta-data', 'http://[::ffff:169.254.169.254]/']) {
        const response = await app.inject({ method: 'POST', url: '/v2/webhooks', headers: admin(p), payload: { url, eventTypes: ['*'] } });
        assert.equal(response.statusCode, 400, url);
        assert.match(response.json().error.details[0].message, /metadata/);
      }
    });

    test('the outbox keeps an event while a delivery of it is pending; purging a delivered event takes its delivery rows', async () => {
      const p = await practice();
      const receiver = await startReceiver();
      const sub = await newSubscription(p, receiver, { eventTypes: ['service.created'] });
      await createService(app, admin(p));
      await waitFor('delivered', async () => (await deliveryRows(db, sub.id))[0]?.status === 'delivered');
      await receiver.down();
      await createService(app, admin(p));
      await waitFor('pending after a failure', async () => (await deliveryRows(db, sub.id)).some((row) => row.status === 'pending' && row.attempts >= 1));
      const rows = await deliveryRows(db, sub.id);
      await withSystem(db, (tx) => tx.query("UPDATE outbox_events SET occurred_at = now() - interval '400 days' WHERE id = ANY($1::uuid[])", [rows.map((row) => row.event_id)]));
      await createService(app, admin(p)); // a newer event, so neither is the newest
      await app.outboxRelay.drain();
      await app.outboxRelay.purge();
      const left = await deliveryRows(db, sub.id);
      const remaining = await withSystem(db, async (tx) => (await tx.query<{ id: string }>('SELECT id FROM outbox_events WHERE id = ANY($1::uuid[])', [rows.map((row) => row.event_id)])).rows);
      assert.equal(remaining.length, 1, 'only the pending delivery\'s event stays');
      assert.equal(left.filter((row) => rows.some((r) => r.id === row.id)).length, 1);
      assert.equal(left.find((row) => rows.some((r) => r.id === row.id))!.status, 'pending');
      await receiver.up();
    });

    test('the secrets never appear in the logs', async () => {
      await app.auditWriter.flush();
      const raw = testApp.rawLog();
      assert.ok(secrets.length >= 10, `collected ${secrets.length}`);
      for (const secret of secrets) {
        assert.equal(raw.includes(secret.slice(6)), false, 'a secret was logged');
      }
    });
  });
}
