import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuditWriter, recordAudit, sealAuditEvents, sealedThrough, verifyAuditChain } from '../../src/audit/audit.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';

for (const target of databaseTargets()) {
  describe(`audit log on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const practiceId = await withSystem(db, async (tx) =>
      (await tx.query<{ id: string }>("INSERT INTO practices (name) VALUES ('Audit Spa') RETURNING id")).rows[0]!.id,
    );
    const event = (action: string) => ({
      practiceId,
      actorType: 'user' as const,
      actorId: 'u1',
      action,
      resourceType: 'patient',
      resourceIds: ['p1', 'p2'],
      outcome: 'success' as const,
      ip: '203.0.113.9',
      requestId: 'req_1',
      details: { count: 2 },
    });

    test('events written in a rolled-back transaction do not exist', async () => {
      await assert.rejects(
        withPractice(db, practiceId, async (tx) => {
          await recordAudit(tx, event('patient.update'));
          throw new Error('change failed');
        }),
      );
      const { rows } = await withPractice(db, practiceId, (tx) =>
        tx.query("SELECT 1 FROM audit_events WHERE action = 'patient.update'"),
      );
      assert.equal(rows.length, 0);
    });

    /** Seals until `expected` events are sealed: on a shared server another client's transaction
     *  can hold the horizon back (the snapshot's xmin is cluster-wide: a long transaction in another
     *  database counts too), so it waits up to 20 s. */
    async function sealUntil(expected: number): Promise<number> {
      let sealed = 0;
      for (let attempt = 0; attempt < 400 && sealed < expected; attempt++) {
        sealed += await sealAuditEvents(db);
        if (sealed < expected) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return sealed;
    }

    const isSealed = async (action: string) => {
      const horizon = await sealedThrough(db, practiceId);
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ sealed: boolean }>('SELECT xact_id < $2::xid8 AS sealed FROM audit_events WHERE action = $1', [action, horizon]),
      );
      return rows.map((row) => row.sealed);
    };

    test('sealed events form a verifiable hash chain per practice', async () => {
      for (const action of ['patient.read', 'patient.list', 'auth.login']) {
        await withPractice(db, practiceId, (tx) => recordAudit(tx, event(action)));
      }
      await withSystem(db, (tx) => recordAudit(tx, { ...event('auth.login_failed'), practiceId: null, outcome: 'failure' }));
      assert.equal(await sealUntil(4), 4);
      assert.equal(await sealAuditEvents(db), 0);
      assert.deepEqual(await verifyAuditChain(db, practiceId), { ok: true, checked: 3, brokenAt: null });
      assert.deepEqual(await verifyAuditChain(db, null), { ok: true, checked: 1, brokenAt: null });
      await withPractice(db, practiceId, (tx) => recordAudit(tx, event('patient.read')));
      assert.equal(await sealUntil(1), 1);
      assert.deepEqual(await verifyAuditChain(db, practiceId), { ok: true, checked: 4, brokenAt: null });
      // One seal per sealing run that found events: at least one for each phase above, more when a
      // transaction elsewhere on the server held the horizon back mid-phase. Numbered 1..n.
      const { rows } = await withSystem(db, (tx) => tx.query<{ seq: number }>('SELECT seq FROM audit_seals WHERE chain_key = $1 ORDER BY seq', [practiceId]));
      const seqs = rows.map((row) => Number(row.seq));
      assert.ok(seqs.length >= 2, `seals: ${seqs.join(',')}`);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
    });

    test('an event of a transaction still running stays unsealed, with every later one, until it ends', { skip: target.kind === 'pglite' && 'one connection: no concurrent transaction' }, async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inserted!: () => void;
      const written = new Promise<void>((resolve) => (inserted = resolve));
      const open = withPractice(db, practiceId, async (tx) => {
        await recordAudit(tx, event('held.open'));
        inserted();
        await held;
      });
      await written;
      await withPractice(db, practiceId, (tx) => recordAudit(tx, event('held.after')));
      await sealAuditEvents(db);
      assert.deepEqual(await isSealed('held.after'), [false]);
      release();
      await open;
      for (let attempt = 0; attempt < 100 && (await isSealed('held.after'))[0] !== true; attempt++) {
        await sealAuditEvents(db);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual([...(await isSealed('held.open')), ...(await isSealed('held.after'))], [true, true]);
      assert.equal((await verifyAuditChain(db, practiceId)).ok, true);
    });

    test('an event cannot be edited or deleted, even by the system role', async () => {
      await assert.rejects(withSystem(db, (tx) => tx.query("UPDATE audit_events SET outcome = 'failure'")), /sealed|append-only|permission/);
      await assert.rejects(withSystem(db, (tx) => tx.query('DELETE FROM audit_events')), /append-only|permission/);
      await assert.rejects(db.query('DELETE FROM audit_events'), /append-only/);
      await assert.rejects(db.query('TRUNCATE audit_events'), /append-only/);
    });

    test('the writer commits concurrent read events together, each caller released after the commit', async () => {
      const writer = new AuditWriter(db);
      const actions = Array.from({ length: 60 }, (_, i) => `writer.read.${i}`);
      await Promise.all(
        actions.map(async (action) => {
          await writer.record({ ...event(action), resourceIds: [action] });
          // Released means committed: visible to another transaction at once.
          const { rows } = await withSystem(db, (tx) => tx.query('SELECT resource_ids FROM audit_events WHERE action = $1', [action]));
          assert.deepEqual(rows, [{ resource_ids: [action] }]);
        }),
      );
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ transactions: number; events: number }>(
          "SELECT count(DISTINCT xmin::text)::int AS transactions, count(*)::int AS events FROM audit_events WHERE action LIKE 'writer.read.%'",
        ),
      );
      assert.equal(rows[0]!.events, 60);
      assert.ok(rows[0]!.transactions <= 2, `60 concurrent events took ${rows[0]!.transactions} transactions`);
    });

    test('an event that cannot be stored fails its own caller, not the others in its batch', async () => {
      const writer = new AuditWriter(db);
      const unknownPractice = '00000000-0000-4000-8000-000000000000';
      const outcomes = await Promise.allSettled([
        writer.record(event('writer.batch.ok1')),
        writer.record({ ...event('writer.batch.bad'), practiceId: unknownPractice }),
        writer.record(event('writer.batch.ok2')),
      ]);
      assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled']);
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ action: string }>("SELECT action FROM audit_events WHERE action LIKE 'writer.batch.%' ORDER BY id"),
      );
      assert.deepEqual(rows.map((row) => row.action), ['writer.batch.ok1', 'writer.batch.ok2']);
    });

    test('a row altered behind the trigger’s back breaks verification at that row', async () => {
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ id: number }>("SELECT id FROM audit_events WHERE action = 'patient.list'"),
      );
      const tampered = rows[0]!.id;
      // Only a database superuser can do this: disable the guard and rewrite history.
      await db.transaction(async (tx) => {
        await tx.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
        await tx.query("UPDATE audit_events SET actor_id = 'someone-else' WHERE id = $1", [tampered]);
        await tx.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
      });
      const result = await verifyAuditChain(db, practiceId);
      assert.equal(result.ok, false);
      assert.equal(result.brokenAt, tampered);
    });

    test('an event deleted behind the trigger’s back breaks verification next to the gap', async () => {
      const other = await migratedDatabase(target);
      const practice = await withSystem(other, async (tx) =>
        (await tx.query<{ id: string }>("INSERT INTO practices (name) VALUES ('Gap Spa') RETURNING id")).rows[0]!.id,
      );
      for (const action of ['a', 'b', 'c']) await withPractice(other, practice, (tx) => recordAudit(tx, { ...event(action), practiceId: practice }));
      for (let attempt = 0; attempt < 100 && (await verifyAuditChain(other, practice)).checked < 3; attempt++) {
        await sealAuditEvents(other);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(await verifyAuditChain(other, practice), { ok: true, checked: 3, brokenAt: null });
      const { rows } = await withSystem(other, (tx) => tx.query<{ id: number }>('SELECT id FROM audit_events WHERE practice_id = $1 ORDER BY id', [practice]));
      await other.transaction(async (tx) => {
        await tx.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
        await tx.query('DELETE FROM audit_events WHERE id = $1', [rows[1]!.id]);
        await tx.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
      });
      const result = await verifyAuditChain(other, practice);
      assert.equal(result.ok, false);
      assert.equal(result.brokenAt, rows[2]!.id);
    });
  });
}
