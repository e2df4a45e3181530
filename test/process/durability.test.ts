// "A process killed with SIGKILL mid-write and restarted on PGlite keeps every committed row"
// (issue 2, checked from outside). A child process commits transactions in a tight loop and
// prints each id after its COMMIT returns; we SIGKILL it at a random moment while it writes,
// reopen the data directory here, and require every printed id (and nothing half-written).
// Three rounds on the same directory, so recovery from one crash is itself crashed into.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPglite } from '../../src/db/database.js';
import { withSystem } from '../../src/db/scope.js';
import { delay, spawnNode, tempDir, waitFor, type ChildHandle } from '../helpers/process.js';

const ROUNDS = 3;
const MIN_COMMITS_PER_ROUND = 20;

function committedIds(writer: ChildHandle): string[] {
  // Only complete lines: a line cut off by the kill was never fully printed.
  const lines = writer.stdout().split('\n').slice(0, -1);
  return lines.filter((line) => line.startsWith('committed ')).map((line) => line.slice('committed '.length));
}

async function waitUntilWriting(writer: ChildHandle): Promise<void> {
  await waitFor(
    'the writer to open the database and start committing',
    () => {
      if (!writer.isRunning()) {
        throw new Error(`writer exited early:\n${writer.stdout()}\n${writer.stderr()}`);
      }
      return committedIds(writer).length > 0;
    },
    { timeoutMs: 60_000 },
  ).catch(async (error: Error) => {
    writer.child.kill('SIGKILL');
    throw new Error(`${error.message}\n--- writer stderr ---\n${writer.stderr()}`);
  });
}

test(`SIGKILL mid-write on PGlite keeps every committed row (${ROUNDS} rounds)`, async (t) => {
  const dataDir = tempDir('medspa-durability-');
  const printed = new Set<string>();

  for (let round = 1; round <= ROUNDS; round++) {
    const writer = spawnNode(['test/process/fixtures/writer.ts', dataDir, String(round)]);
    await waitUntilWriting(writer);

    // Write for a random 0.7-1.7 s, and long enough to have a meaningful number of commits.
    const writeMs = 700 + Math.floor(Math.random() * 1000);
    await delay(writeMs);
    await waitFor(`${MIN_COMMITS_PER_ROUND} commits`, () => committedIds(writer).length >= MIN_COMMITS_PER_ROUND, {
      timeoutMs: 30_000,
    });
    assert.ok(writer.isRunning(), `the writer must still be writing when killed:\n${writer.stderr()}`);
    writer.child.kill('SIGKILL');
    const exit = await writer.waitForExit(10_000);
    assert.equal(exit.signal, 'SIGKILL');

    const ids = committedIds(writer);
    assert.ok(ids.length >= MIN_COMMITS_PER_ROUND);
    for (const id of ids) printed.add(id);

    // Reopen the directory the killed process left behind: it must open, recover, and hold every row.
    const db = await openPglite({ dataDir });
    try {
      const { present, orphans, users } = await withSystem(db, async (tx) => {
        const practices = await tx.query<{ id: string }>('SELECT id FROM practices');
        const orphanRows = await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM practices p WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.practice_id = p.id)',
        );
        const userRows = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
        return {
          present: new Set(practices.rows.map((row) => row.id)),
          orphans: orphanRows.rows[0]!.n,
          users: userRows.rows[0]!.n,
        };
      });
      const missing = [...printed].filter((id) => !present.has(id));
      assert.deepEqual(missing, [], `round ${round}: ${missing.length} of ${printed.size} committed rows were lost`);
      // Each transaction wrote a practice and its user: a crash never leaves half of one.
      assert.equal(orphans, 0, `round ${round}: a practice without its user means a torn transaction`);
      assert.equal(users, present.size);
      // At most one transaction per kill can have committed without its id reaching us.
      const unprinted = present.size - printed.size;
      assert.ok(unprinted >= 0 && unprinted <= round, `round ${round}: ${unprinted} rows nobody reported committing`);
      // The recovered database still takes writes (a practice and its user, like the writer).
      const id = await withSystem(db, async (tx) => {
        const { rows } = await tx.query<{ id: string }>(
          "INSERT INTO practices (name, time_zone) VALUES ('after recovery', 'UTC') RETURNING id",
        );
        await tx.query(
          "INSERT INTO users (practice_id, email, password_hash, role) VALUES ($1, $2, 'not-a-real-hash', 'STAFF')",
          [rows[0]!.id, `recovered-${round}@durability.test`],
        );
        return rows[0]!.id;
      });
      printed.add(id);
      t.diagnostic(`round ${round}: killed after ${ids.length} commits (${writeMs} ms); ${present.size} rows recovered`);
    } finally {
      await db.close();
    }
  }
});
