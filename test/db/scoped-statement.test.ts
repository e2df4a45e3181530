// The single-round-trip path (readInPractice, statementAsSystem): prepared once per connection,
// scoped by set_config in the same implicit transaction. What it must never do is let a scope
// outlive its statement, or let one practice's prepared statement answer for another.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readInPractice, statementAsSystem, withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';

for (const target of databaseTargets()) {
  describe(`scoped statements on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const [practiceA, practiceB] = await withSystem(db, async (tx) => {
      const ids: string[] = [];
      for (const [name, patients] of [['Practice A', 3], ['Practice B', 5]] as const) {
        const { rows } = await tx.query<{ id: string }>('INSERT INTO practices (name) VALUES ($1) RETURNING id', [name]);
        ids.push(rows[0]!.id);
        await tx.query(`INSERT INTO patients (practice_id, first_name, last_name) SELECT $1, 'P' || i, $2 FROM generate_series(1, $3::int) i`, [
          rows[0]!.id,
          name,
          patients,
        ]);
      }
      return ids as [string, string];
    });
    const countAll = { sql: 'SELECT count(*)::int AS n, current_user AS role FROM patients', params: [] };

    test('a statement without a practice filter sees only its practice’s rows', async () => {
      const a = await readInPractice<{ n: number; role: string }>(db, practiceA, countAll);
      const b = await readInPractice<{ n: number; role: string }>(db, practiceB, countAll);
      assert.deepEqual(a.rows, [{ n: 3, role: 'medspa_app' }]);
      assert.deepEqual(b.rows, [{ n: 5, role: 'medspa_app' }]);
    });

    test('the same prepared statement, reused for practice A then B, answers for each in turn', async () => {
      // Many rounds on a small pool: every connection serves both practices.
      const rounds = await Promise.all(
        Array.from({ length: 40 }, (_, i) => {
          const practiceId = i % 2 === 0 ? practiceA : practiceB;
          return readInPractice<{ last_name: string }>(db, practiceId, { sql: 'SELECT DISTINCT last_name FROM patients', params: [] }).then(
            ({ rows }) => [practiceId, rows.map((row) => row.last_name)] as const,
          );
        }),
      );
      for (const [practiceId, names] of rounds) assert.deepEqual(names, [practiceId === practiceA ? 'Practice A' : 'Practice B']);
    });

    test('the scope ends with its statement: the next query on the connection has no role or practice', async () => {
      await readInPractice(db, practiceA, countAll);
      // Several plain queries, so whichever pooled connection served the read is among them.
      const after = await Promise.all(
        Array.from({ length: 8 }, () =>
          db.query<{ practice: string | null; scoped: boolean; plans: string }>(
            `SELECT nullif(current_setting('app.practice_id', true), '') AS practice, current_user IN ('medspa_app', 'medspa_system') AS scoped,
                    current_setting('plan_cache_mode') AS plans`,
          ),
        ),
      );
      for (const { rows } of after) assert.deepEqual(rows, [{ practice: null, scoped: false, plans: 'auto' }]);
    });

    test('a failing statement rolls back, and the connection and statement work again afterwards', async () => {
      const divide = (by: number) => readInPractice<{ x: number }>(db, practiceA, { sql: 'SELECT 10 / $1::int AS x', params: [by] });
      for (let i = 0; i < 3; i++) {
        await assert.rejects(divide(0), /division by zero/);
        assert.deepEqual((await divide(5)).rows, [{ x: 2 }]);
      }
      await assert.rejects(readInPractice(db, practiceA, { sql: 'SELECT no_such_column FROM patients', params: [] }), /no_such_column/);
      assert.equal((await readInPractice<{ n: number }>(db, practiceA, countAll)).rows[0]!.n, 3);
    });

    test('a write in a scoped statement is committed, and refused for another practice', async () => {
      const rename = (practiceId: string, target: string) =>
        readInPractice(db, practiceId, { sql: "UPDATE patients SET notes = 'seen' WHERE practice_id = $1", params: [target] });
      assert.equal((await rename(practiceA, practiceB)).rowCount, 0);
      assert.equal((await rename(practiceA, practiceA)).rowCount, 3);
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ practice_id: string; n: number }>("SELECT practice_id, count(*)::int AS n FROM patients WHERE notes = 'seen' GROUP BY 1"),
      );
      assert.deepEqual(rows, [{ practice_id: practiceA, n: 3 }]);
    });

    test('the system scope sees every practice', async () => {
      const { rows } = await statementAsSystem<{ n: number; role: string }>(db, countAll);
      assert.deepEqual(rows, [{ n: 8, role: 'medspa_system' }]);
    });

    test('a read is planned once per connection, not on every execution', { skip: target.kind === 'pglite' && 'PGlite runs it as a plain transaction, no prepared statement' }, async () => {
      // LIMIT $1 is what made PostgreSQL plan afresh each time: a generic plan's estimate for it
      // never beats the custom plan's. The statement reads its own planning counters.
      const probe = {
        sql: `SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements
               WHERE statement LIKE '%/* plan probe */%' LIMIT $1`,
        params: [20],
      };
      for (let i = 0; i < 30; i++) {
        const { rows } = await readInPractice<{ generic: number; custom: number }>(db, practiceA, probe);
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.custom, 0, `execution ${i} was planned for its parameters`);
        assert.ok(rows[0]!.generic >= 1);
      }
    });

    test('a practice id that is not a UUID is refused before any SQL is sent', async () => {
      await assert.rejects(readInPractice(db, "x'; SELECT 1; --", countAll), /UUID/);
    });
  });
}
