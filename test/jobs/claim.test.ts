// The claiming mechanism (src/jobs/claim.ts) on a queue table of its own: claims never overlap,
// an expired lease is claimed again, and a claimer whose lease was taken over cannot finish.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { claim, heldBy, release, type ClaimQueue } from '../../src/jobs/claim.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { delay } from '../helpers/process.js';

const QUEUE: ClaimQueue = { table: 'claim_test_jobs', ready: 't.ready', order: 't.n' };

for (const target of databaseTargets()) {
  describe(`job claiming on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    await db.exec(`CREATE TABLE claim_test_jobs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n integer NOT NULL, ready boolean NOT NULL DEFAULT true,
                   done_by text, claimed_by text, lease_until timestamptz)`);
    const reset = async (count: number) => {
      await db.exec('DELETE FROM claim_test_jobs');
      await db.query('INSERT INTO claim_test_jobs (n) SELECT g FROM generate_series(1, $1) AS g', [count]);
    };

    test('concurrent claimers get disjoint rows, oldest first, and together all of them', async () => {
      await reset(40);
      const claims = await Promise.all(Array.from({ length: 4 }, (_, i) => db.transaction((tx) => claim<{ id: string; n: number }>(tx, QUEUE, { owner: `w${i}`, limit: 10, leaseMs: 60_000 }))));
      const ids = claims.flatMap((c) => c.rows.map((row) => row.id));
      assert.equal(ids.length, 40);
      assert.equal(new Set(ids).size, 40);
      const again = await db.transaction((tx) => claim(tx, QUEUE, { owner: 'late', limit: 10, leaseMs: 60_000 }));
      assert.equal(again.rows.length, 0, 'held leases are not claimed');
    });

    test('a lease that expires (its claimer was SIGKILLed) is claimed again; the old claimer can no longer finish', async () => {
      await reset(3);
      const first = await db.transaction((tx) => claim<{ id: string }>(tx, QUEUE, { owner: 'dead', limit: 10, leaseMs: 150 }));
      assert.equal(first.rows.length, 3);
      assert.equal((await db.transaction((tx) => claim(tx, QUEUE, { owner: 'b', limit: 10, leaseMs: 60_000 }))).rows.length, 0);
      await delay(250);
      const second = await db.transaction((tx) => claim<{ id: string }>(tx, QUEUE, { owner: 'b', limit: 10, leaseMs: 60_000 }));
      assert.equal(second.rows.length, 3);
      const finish = (token: string) =>
        db.query(`UPDATE claim_test_jobs t SET done_by = $2, claimed_by = NULL, lease_until = NULL, ready = false WHERE ${heldBy('t', '$1')}`, [token, token]);
      assert.equal((await finish(first.token)).rowCount, 0, 'the stale claim is fenced out');
      assert.equal((await finish(second.token)).rowCount, 3);
    });

    test('release gives rows back at once (a graceful shutdown)', async () => {
      await reset(2);
      const held = await db.transaction((tx) => claim<{ id: string }>(tx, QUEUE, { owner: 'a', limit: 10, leaseMs: 60_000 }));
      assert.equal(await db.transaction((tx) => release(tx, QUEUE.table, held.token, held.rows.map((row) => row.id))), 2);
      assert.equal((await db.transaction((tx) => claim(tx, QUEUE, { owner: 'b', limit: 10, leaseMs: 60_000 }))).rows.length, 2);
    });
  });
}
