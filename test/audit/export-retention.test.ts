// Audit export (verifiable offline) and retention (purge of whole sealed ranges past six years).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { recordAudit, sealAuditEvents, verifyAuditChain } from '../../src/audit/audit.js';
import { verifyAuditExport } from '../../src/audit/export.js';
import { purgeExpiredAudit } from '../../src/audit/retention.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { withPractice, withSystem } from '../../src/db/scope.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';
import { REPO_ROOT, tempDir } from '../helpers/process.js';

async function* linesOf(text: string): AsyncGenerator<string> {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  yield* lines;
}

const verifyText = (text: string) => verifyAuditExport(linesOf(text));

/** Seals until no event of this practice is left unsealed (another client may hold the horizon back). */
async function sealAll(db: Database, practiceId: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    await sealAuditEvents(db);
    const { rows } = await withSystem(db, (tx) =>
      tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events
          WHERE practice_id = $1 AND xact_id >= (SELECT coalesce(max(xact_to), '0') FROM audit_seals WHERE chain_key = $1::text)`,
        [practiceId],
      ),
    );
    if (rows[0]!.n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('events stayed unsealed');
}

/** Events in `rounds` separate seals. */
async function sealedRounds(db: Database, practiceId: string, rounds: number, perRound = 2): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < perRound; i++) {
      await withPractice(db, practiceId, (tx) =>
        recordAudit(tx, { practiceId, actorType: 'system', actorId: null, action: `test.round${round}`, resourceIds: [`r${round}-${i}`], outcome: 'success', details: { i } }),
      );
    }
    await sealAll(db, practiceId);
  }
}

/** Moves seals' sealed_at into the past, behind the triggers' back (a test's superuser can). */
async function backdateSeals(db: Database, practiceId: string, throughSeq: number, years: number): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query("SET LOCAL session_replication_role = 'replica'");
    await tx.query(`UPDATE audit_seals SET sealed_at = sealed_at - make_interval(years => $3) WHERE chain_key = $1 AND seq <= $2`, [
      practiceId,
      throughSeq,
      years,
    ]);
  });
}

test('AUDIT_RETENTION_YEARS below six stops the start with a message naming the variable', () => {
  assert.throws(() => loadConfig({ NODE_ENV: 'test', AUDIT_RETENTION_YEARS: '5' }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.variable, 'AUDIT_RETENTION_YEARS');
    assert.match(error.message, /at least 6/);
    return true;
  });
  assert.equal(loadConfig({ NODE_ENV: 'test' }).audit.retentionYears, 6);
  assert.equal(loadConfig({ NODE_ENV: 'test', AUDIT_RETENTION_YEARS: '10' }).audit.retentionYears, 10);
});

for (const target of databaseTargets()) {
  describe(`audit export and retention on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app, 'Export Spa');
    const other = await createTestPractice(app, 'Other Spa');
    const admin = practice.users.ADMIN.headers;
    await sealedRounds(db, practice.id, 3);
    await sealedRounds(db, other.id, 1);

    const exportText = async (query = '') => {
      const response = await app.inject({ method: 'GET', url: `/v1/audit-events/export${query}`, headers: admin });
      assert.equal(response.statusCode, 200, response.body);
      return response;
    };

    test('an export holds the practice’s sealed events with their seals and verifies offline', async () => {
      const response = await exportText();
      assert.match(String(response.headers['content-type']), /application\/x-ndjson/);
      const records = response.body.trim().split('\n').map((line) => JSON.parse(line) as { type: string; canonical?: string });
      assert.equal(records[0]!.type, 'export');
      assert.equal(records.at(-1)!.type, 'end');
      const events = records.filter((r) => r.type === 'event').map((r) => JSON.parse(r.canonical!) as unknown[]);
      assert.ok(events.some((e) => e[5] === 'test.round2'));
      // Nothing of the other practice.
      assert.ok(events.every((e) => e[1] === practice.id));
      const result = await verifyText(response.body);
      assert.equal(result.ok, true, JSON.stringify(result));
      if (result.ok) assert.equal(result.events, events.length);
      // Reading the trail this way is audited.
      const { rows } = await withSystem(db, (tx) => tx.query("SELECT 1 FROM audit_events WHERE action = 'audit.export' AND practice_id = $1", [practice.id]));
      assert.ok(rows.length >= 1);
    });

    test('a tampered export line fails offline verification, naming the line', async () => {
      const lines = (await exportText()).body.trim().split('\n');
      const index = lines.findIndex((line) => line.includes('test.round1'));
      assert.ok(index > 0);
      lines[index] = lines[index]!.replace('test.round1', 'test.roundX');
      const result = await verifyText(lines.join('\n'));
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.line, index + 1);
        assert.match(result.message, /does not match its digest/);
      }
    });

    test('a removed or reordered export line fails offline verification', async () => {
      const lines = (await exportText()).body.trim().split('\n');
      const eventLine = lines.findIndex((line) => line.includes('"type":"event"'));
      const removed = lines.filter((_, i) => i !== eventLine);
      assert.equal((await verifyText(removed.join('\n'))).ok, false);
      const swapped = [...lines];
      [swapped[eventLine], swapped[eventLine + 1]] = [swapped[eventLine + 1]!, swapped[eventLine]!];
      assert.equal((await verifyText(swapped.join('\n'))).ok, false);
    });

    test('a truncated export fails offline verification', async () => {
      const lines = (await exportText()).body.trim().split('\n');
      const result = await verifyText(lines.slice(0, -1).join('\n'));
      assert.deepEqual(result.ok ? null : result.message, 'the file ends without its end record (truncated)');
    });

    test('a seal rewritten to cover a tampered event fails offline verification (its hash no longer matches)', async () => {
      const lines = (await exportText()).body.trim().split('\n');
      const sealLine = lines.findIndex((line) => line.includes('"type":"seal"'));
      const seal = JSON.parse(lines[sealLine]!) as { eventDigests: string };
      seal.eventDigests = `${'0'.repeat(64)}${seal.eventDigests.slice(64)}`;
      lines[sealLine] = JSON.stringify(seal);
      const result = await verifyText(lines.join('\n'));
      assert.equal(result.ok ? null : result.line, sealLine + 1);
    });

    test('a CSV export verifies offline, and a changed readable column fails', async () => {
      const response = await exportText('?format=csv');
      assert.match(String(response.headers['content-type']), /text\/csv/);
      assert.equal((await verifyText(response.body)).ok, true);
      const lines = response.body.trim().split('\n');
      const index = lines.findIndex((line) => line.startsWith('event,') && line.includes(',test.round0,'));
      lines[index] = lines[index]!.replace(',test.round0,', ',test.other,');
      const result = await verifyText(lines.join('\n'));
      assert.equal(result.ok ? null : result.line, index + 1);
    });

    test('an export of a time range holds the whole seals covering it and nothing older', async () => {
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ at: Date }>("SELECT occurred_at AS at FROM audit_events WHERE practice_id = $1 AND action = 'test.round2' ORDER BY id LIMIT 1", [practice.id]),
      );
      const from = rows[0]!.at.toISOString();
      const body = (await exportText(`?from=${encodeURIComponent(from)}`)).body;
      assert.ok(!body.includes('test.round0'));
      assert.ok(body.includes('test.round2'));
      assert.equal((await verifyText(body)).ok, true);
      const bad = await app.inject({ method: 'GET', url: `/v1/audit-events/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(from)}`, headers: admin });
      assert.equal(bad.statusCode, 400);
    });

    test('a MANAGER cannot export the audit trail', async () => {
      const response = await app.inject({ method: 'GET', url: '/v1/audit-events/export', headers: practice.users.MANAGER.headers });
      assert.equal(response.statusCode, 403);
    });

    test('verify-audit-export exits 0 for a good file and non-zero naming the first bad line', { skip: target.kind !== 'pglite' && 'one run is enough' }, async () => {
      const dir = tempDir('medspa-export-');
      const good = join(dir, 'good.ndjson');
      const bad = join(dir, 'bad.ndjson');
      const lines = (await exportText()).body.trim().split('\n');
      writeFileSync(good, `${lines.join('\n')}\n`);
      const index = lines.findIndex((line) => line.includes('"type":"event"'));
      lines[index] = lines[index]!.replace('"canonical":"[', '"canonical":"[ ');
      writeFileSync(bad, `${lines.join('\n')}\n`);
      const run = async (file: string) => {
        try {
          // No database: DATABASE_URL points nowhere reachable, and the command must not need it.
          const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'verify-audit-export', file], {
            cwd: REPO_ROOT,
            env: { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', DATA_DIR: dir },
          });
          return { code: 0, out: stdout };
        } catch (error) {
          const e = error as { code: number; stderr: string };
          return { code: e.code, out: e.stderr };
        }
      };
      const ok = await run(good);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /ok, \d+ seals and \d+ events verified/);
      const failed = await run(bad);
      assert.notEqual(failed.code, 0);
      assert.match(failed.out, new RegExp(`line ${index + 1}:`));
    });

    describe('retention', async () => {
      const chain = other.id;
      await sealedRounds(db, chain, 3); // seals 2..4 on top of the one above
      const seals = async () =>
        (await withSystem(db, (tx) => tx.query<{ seq: string }>('SELECT seq::text AS seq FROM audit_seals s WHERE chain_key = $1 ORDER BY s.seq', [chain]))).rows.map((r) => Number(r.seq));

      test('nothing younger than the retention is purged', async () => {
        const report = await purgeExpiredAudit(db, { retentionYears: 6 });
        assert.deepEqual(report.chains.filter((c) => c.chainKey === chain), []);
        await assert.rejects(purgeExpiredAudit(db, { retentionYears: 5 }), /at least 6 years/);
      });

      test('the database refuses a purge cutoff less than six years ago, whoever calls it', async () => {
        await assert.rejects(
          withSystem(db, (tx) => tx.query("SELECT purge_audit_chain($1, 1, now() - interval '5 years')", [chain])),
          /kept at least 6 years/,
        );
      });

      test('the purge flag does not let the application delete or update audit events', async () => {
        for (const sql of ['DELETE FROM audit_events WHERE practice_id = $1', "UPDATE audit_events SET action = 'x' WHERE practice_id = $1"]) {
          await assert.rejects(
            withSystem(db, async (tx) => {
              await tx.query("SET LOCAL medspa.audit_purge = 'on'");
              await tx.query(sql, [chain]);
            }),
            /permission denied|append-only/,
          );
        }
        // The owner may delete only under the flag, and never update.
        await assert.rejects(db.transaction((tx) => tx.query('DELETE FROM audit_events WHERE practice_id = $1', [chain])), /append-only/);
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.query("SET LOCAL medspa.audit_purge = 'on'");
            await tx.query("UPDATE audit_events SET action = 'x' WHERE practice_id = $1", [chain]);
          }),
          /append-only/,
        );
      });

      test('a purge removes whole sealed ranges past retention, keeps the newest seal, and the chain still verifies', async () => {
        const before = await seals();
        assert.ok(before.length >= 4, before.join(','));
        const { rows: keep } = await withSystem(db, (tx) =>
          tx.query<{ n: number }>('SELECT coalesce(sum(event_count), 0)::int AS n FROM audit_seals WHERE chain_key = $1 AND seq > 2', [chain]),
        );
        // Seals 1-2 are seven years old; so is every seal in a second step, but the newest stays.
        await backdateSeals(db, chain, 2, 7);
        const report = await purgeExpiredAudit(db, { retentionYears: 6 });
        assert.deepEqual(report.chains.find((c) => c.chainKey === chain), { chainKey: chain, fromSeq: 1, throughSeq: 2, events: report.chains.find((c) => c.chainKey === chain)!.events });
        assert.ok(report.chains.find((c) => c.chainKey === chain)!.events >= 2);
        assert.deepEqual(await seals(), before.filter((seq) => seq > 2));
        assert.deepEqual(await verifyAuditChain(db, chain), { ok: true, checked: keep[0]!.n, brokenAt: null });
        // The purge itself is in the log (sealed next), and the other practice is untouched.
        await sealAll(db, chain);
        const { rows } = await withSystem(db, (tx) => tx.query<{ details: { throughSeq: number } }>("SELECT details FROM audit_events WHERE practice_id = $1 AND action = 'audit.purged'", [chain]));
        assert.equal(rows[0]?.details.throughSeq, 2);
        assert.equal((await verifyAuditChain(db, chain)).ok, true);
        assert.equal((await verifyAuditChain(db, practice.id)).ok, true);

        const newest = Math.max(...(await seals()));
        await backdateSeals(db, chain, newest, 8);
        const second = await purgeExpiredAudit(db, { retentionYears: 6 });
        assert.equal(second.chains.find((c) => c.chainKey === chain)?.throughSeq, newest - 1);
        assert.deepEqual(await seals(), [newest]);
        const verified = await verifyAuditChain(db, chain);
        assert.equal(verified.ok, true, JSON.stringify(verified));
      });

      test('an export after a purge links to the purge point and verifies offline', async () => {
        const headers = other.users.ADMIN.headers;
        await sealedRounds(db, chain, 1);
        const response = await app.inject({ method: 'GET', url: '/v1/audit-events/export', headers });
        const header = JSON.parse(response.body.split('\n')[0]!) as { previousSeal: { seq: number } };
        assert.ok(header.previousSeal.seq > 1);
        assert.equal((await verifyText(response.body)).ok, true);
      });

      test('an event deleted from a retained range behind the purge’s back still breaks the chain', async () => {
        await db.transaction(async (tx) => {
          await tx.query("SET LOCAL session_replication_role = 'replica'");
          await tx.query("DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events WHERE practice_id = $1 AND action LIKE 'test.%')", [chain]);
        });
        assert.equal((await verifyAuditChain(db, chain)).ok, false);
      });
    });
  });
}
