// Two app instances on one database deliver a burst: every delivery attempted exactly once; and a
// delivery claimed by an instance that died is delivered once its lease expires.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { waitFor } from '../helpers/process.js';
import { startReceiver } from '../helpers/receiver.js';
import { FAST, startWebhookApp, subscribe } from './helpers.js';

for (const target of databaseTargets()) {
  describe(`two instances delivering on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    // Instances of one deployment share ENCRYPTION_KEY (tests otherwise get a fresh one per app). A
    // generous timeout: receiver, both apps and PGlite share this process's one thread.
    const shared = { encryptionKey: randomBytes(32).toString('base64url') };
    const one = await startWebhookApp(db, { ...FAST, concurrency: 8, timeoutMs: 5000, leaseMs: 10_000 }, undefined, shared);
    const two = await startWebhookApp(db, { ...FAST, concurrency: 8, timeoutMs: 5000, leaseMs: 10_000 }, undefined, shared);
    const practice = await createTestPractice(one.app, 'Burst Spa');
    const headers = practice.users.ADMIN.headers;

    test('a burst of 300 events: each delivery attempted exactly once across both instances', async () => {
      const receiver = await startReceiver();
      const sub = await subscribe(two.app, headers, { url: receiver.url, eventTypes: ['service.*'] });
      const events = Array.from({ length: 300 }, () => ({
        practiceId: practice.id,
        type: 'service.created' as const,
        resourceId: randomUUID(),
        actor: { type: 'system', id: null },
      }));
      await withPractice(db, practice.id, (tx) => one.app.events.record(tx, events));
      await waitFor('300 deliveries', () => receiver.received.length >= 300, { timeoutMs: 30_000 });
      await waitFor('all recorded', async () =>
        withSystem(db, async (tx) => (await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'delivered'", [sub.id])).rows[0]!.n === 300),
      );
      const ids = receiver.received.map((r) => String(r.headers['webhook-id']));
      assert.equal(ids.length, 300, 'no attempt twice');
      assert.equal(new Set(ids).size, 300);
      const attempts = await withSystem(db, async (tx) => (await tx.query<{ attempts: number }>('SELECT DISTINCT attempts FROM webhook_deliveries WHERE subscription_id = $1', [sub.id])).rows);
      assert.deepEqual(attempts, [{ attempts: 1 }]);
    });

    test('a delivery claimed by an instance that died is delivered after its lease expires', async () => {
      const receiver = await startReceiver();
      const sub = await subscribe(one.app, headers, { url: receiver.url, eventTypes: ['service.updated'] });
      // A claim by an instance that never comes back: its lease runs 400 ms.
      await withSystem(db, async (tx) => {
        await tx.query(
          `UPDATE webhook_subscriptions SET status = 'disabled' WHERE id = $1`, [sub.id]);
      });
      await withPractice(db, practice.id, (tx) =>
        one.app.events.record(tx, { practiceId: practice.id, type: 'service.updated', resourceId: randomUUID(), actor: { type: 'system', id: null } }),
      );
      await one.app.outboxRelay.drain();
      await withSystem(db, async (tx) => {
        await tx.query('INSERT INTO webhook_deliveries (practice_id, subscription_id, event_id, event_type, occurred_at) SELECT practice_id, $1, id, type, occurred_at FROM outbox_events WHERE type = $2', [sub.id, 'service.updated']);
        await tx.query("UPDATE webhook_deliveries SET claimed_by = 'killed-instance:1', lease_until = now() + interval '400 milliseconds' WHERE subscription_id = $1", [sub.id]);
        await tx.query(`UPDATE webhook_subscriptions SET status = 'active' WHERE id = $1`, [sub.id]);
      });
      const claimedAt = Date.now();
      const received = await waitFor('delivered after the lease', () => receiver.received[0]);
      assert.ok(received.at - claimedAt >= 350, `delivered ${received.at - claimedAt} ms after the claim`);
      assert.equal(receiver.received.length, 1);
    });
  });
}
