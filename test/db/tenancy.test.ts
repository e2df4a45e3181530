// Row-level security is the backstop behind every practice filter: a query that forgets
// `WHERE practice_id = …` must see nothing of another practice, not everything.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';

for (const target of databaseTargets()) {
  describe(`practice isolation on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const [practiceA, practiceB] = await withSystem(db, async (tx) => {
      const ids: string[] = [];
      for (const name of ['Practice A', 'Practice B']) {
        const { rows } = await tx.query<{ id: string }>('INSERT INTO practices (name) VALUES ($1) RETURNING id', [name]);
        const id = rows[0]!.id;
        ids.push(id);
        await tx.query(
          "INSERT INTO users (practice_id, email, password_hash, role) VALUES ($1, $2, 'x', 'STAFF')",
          [id, `front-desk@${name.replace(' ', '').toLowerCase()}.test`],
        );
      }
      return ids as [string, string];
    });

    test('a query without a practice filter returns only the current practice’s rows', async () => {
      const emails = await withPractice(db, practiceA, async (tx) =>
        (await tx.query<{ email: string }>('SELECT email FROM users')).rows.map((r) => r.email),
      );
      assert.deepEqual(emails, ['front-desk@practicea.test']);
    });

    test('practice A cannot read practice B’s user even by id', async () => {
      const { rows } = await withPractice(db, practiceA, (tx) =>
        tx.query('SELECT 1 FROM users WHERE practice_id = $1', [practiceB]),
      );
      assert.equal(rows.length, 0);
    });

    test('practice A cannot update practice B’s rows', async () => {
      const result = await withPractice(db, practiceA, (tx) =>
        tx.query("UPDATE users SET role = 'ADMIN' WHERE practice_id = $1", [practiceB]),
      );
      assert.equal(result.rowCount, 0);
      const roles = await withPractice(db, practiceB, (tx) => tx.query<{ role: string }>('SELECT role FROM users'));
      assert.deepEqual(roles.rows.map((r) => r.role), ['STAFF']);
    });

    test('practice A cannot insert rows into practice B', async () => {
      await assert.rejects(
        withPractice(db, practiceA, (tx) =>
          tx.query("INSERT INTO users (practice_id, email, password_hash, role) VALUES ($1, 'mole@x.test', 'x', 'ADMIN')", [
            practiceB,
          ]),
        ),
        /row-level security/,
      );
    });

    test('a transaction without a practice sees nothing at all (fails closed)', async () => {
      const { rows } = await db.transaction(async (tx) => {
        await tx.query("SELECT set_config('role', 'medspa_app', true)");
        return tx.query('SELECT * FROM users');
      });
      assert.equal(rows.length, 0);
    });

    test('the scoped role cannot delete audit events or reach the system role’s tables', async () => {
      await assert.rejects(
        withPractice(db, practiceA, (tx) => tx.query('DELETE FROM audit_events')),
        /permission denied/,
      );
      await assert.rejects(
        withPractice(db, practiceA, (tx) => tx.query('SELECT * FROM audit_seals')),
        /permission denied/,
      );
    });

    test('the system path sees every practice', async () => {
      const { rows } = await withSystem(db, (tx) => tx.query<{ n: number }>('SELECT count(*)::int AS n FROM users'));
      assert.equal(rows[0]?.n, 2);
    });
  });
}
