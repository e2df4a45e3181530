// PHI encryption at rest (db/field-encryption.ts, db/patient-phi.ts, migration 015): what a stolen
// dump or a copied PGlite directory shows, tampering, key rotation while the API reads, and a
// wrong master key at start.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openPglite, type Database } from '../../src/db/database.js';
import { FieldEncryptionError, PhiKeyring } from '../../src/db/field-encryption.js';
import { migrate } from '../../src/db/migrate.js';
import { openPatient, orderKeyBetween, orderKeysBetween } from '../../src/db/patient-phi.js';
import { withSystem } from '../../src/db/scope.js';
import { rotateDataKey } from '../../src/patients/key-rotation.js';
import { startTestApp } from '../helpers/app.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { createTestPractice } from '../helpers/identity.js';

const PATIENT = {
  firstName: 'Philippa',
  lastName: 'Quartermaine',
  email: 'philippa.quartermaine@example.com',
  phoneNumber: '+12125550187',
  dateOfBirth: '1984-07-19',
  notes: 'Allergic to lidocaine',
  address: { line1: '48 Larkspur Lane', city: 'Brookhaven', state: 'NY', postalCode: '11719', country: 'US' },
};
// What must not appear anywhere in stored bytes (the phone also as its bare digits).
const SECRETS = [PATIENT.firstName, PATIENT.lastName, PATIENT.email, PATIENT.phoneNumber, '2125550187', PATIENT.notes, PATIENT.address.line1];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function leaksIn(bytes: Buffer): string[] {
  const latin = bytes.toString('latin1').toLowerCase();
  return SECRETS.filter((secret) => latin.includes(secret.toLowerCase()));
}

/** A patient stored the way it was before migration 015 (plaintext columns), as a legacy row. */
async function insertLegacyPatient(db: Database, practiceId: string, fields: { firstName: string; lastName: string; email: string }): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO patients (practice_id, first_name, last_name, email, phone_number, date_of_birth) VALUES ($1, $2, $3, $4, '+13105550142', '1990-02-03') RETURNING id`,
    [practiceId, fields.firstName, fields.lastName, fields.email],
  );
  return rows[0]!.id;
}

describe('order keys', () => {
  test('a key between two keys sorts between them, and many keys spread over one gap stay ordered', () => {
    let keys = ['', 'V', 'k'];
    for (let i = 0; i < 200; i++) {
      const key = orderKeyBetween(keys[1]!, keys[2]!);
      assert.ok(keys[1]! < key && key < keys[2]!);
      keys = ['', keys[1]!, key];
    }
    const spread = orderKeysBetween('A', 'B', 1000);
    assert.equal(new Set(spread).size, 1000);
    assert.deepEqual([...spread].sort(), spread);
    assert.ok(spread.every((key) => 'A' < key && key < 'B'));
  });
});

describe('PGlite data directory', () => {
  test("a copy of PGlite's files holds no patient name, email, phone, notes or address in clear text", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medspa-phi-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const db = await openPglite({ dataDir: dir });
    await migrate(db);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app);
    const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: practice.users.ADMIN.headers, payload: PATIENT });
    assert.equal(created.statusCode, 201, created.body);
    const read = await app.inject({ url: `/v1/patients?q=${encodeURIComponent('quarterm')}`, headers: practice.users.STAFF.headers });
    assert.equal((read.json() as { pagination: { total: number } }).pagination.total, 1);
    await app.close();
    await db.close();
    const leaks = filesUnder(dir).flatMap((file) => leaksIn(readFileSync(file)).map((secret) => `${secret} in ${file}`));
    assert.deepEqual(leaks, []);
  });
});

for (const target of databaseTargets()) {
  describe(`PHI encryption at rest on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db);
    const practice = await createTestPractice(app);
    const admin = practice.users.ADMIN.headers;
    const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: PATIENT });
    assert.equal(created.statusCode, 201, created.body);
    const patientId = (created.json() as { id: string }).id;

    test('the stored row holds ciphertext, a key version and blind indexes; the plaintext columns are empty', async () => {
      const { rows } = await db.query<Record<string, unknown>>(`SELECT * FROM patients WHERE id = $1`, [patientId]);
      const row = rows[0]!;
      for (const column of ['first_name', 'last_name', 'email', 'phone_number', 'date_of_birth', 'address', 'notes']) assert.equal(row[column], null, column);
      assert.equal(row.phi_key, 1);
      assert.deepEqual(leaksIn(Buffer.from(JSON.stringify(row))), []);
      const read = await app.inject({ url: `/v1/patients/${patientId}`, headers: admin });
      assert.deepEqual((({ firstName, lastName, email, phoneNumber }) => ({ firstName, lastName, email, phoneNumber }))(read.json() as typeof PATIENT), {
        firstName: PATIENT.firstName, lastName: PATIENT.lastName, email: PATIENT.email, phoneNumber: PATIENT.phoneNumber,
      });
    });

    test('search by part of the name, the email and the phone still finds the patient; duplicates are still refused', async () => {
      for (const q of ['quarterm', 'PHILIPPA Q', 'quartermaine philippa', 'philippa.quarter', '(212) 555-0187', 'Ph']) {
        const response = await app.inject({ url: `/v1/patients?q=${encodeURIComponent(q)}`, headers: admin });
        assert.deepEqual((response.json() as { data: Array<{ id: string }> }).data.map((p) => p.id), [patientId], q);
      }
      const again = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: { ...PATIENT, email: 'other@example.com' } });
      assert.equal(again.statusCode, 409);
      const sameEmail = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: { firstName: 'Other', lastName: 'Person', email: PATIENT.email.toUpperCase() } });
      assert.equal(sameEmail.statusCode, 409);
    });

    test('swapping ciphertext between two rows is refused, not opened as the other patient', async () => {
      const second = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: { firstName: 'Swap', lastName: 'Target' } });
      const secondId = (second.json() as { id: string }).id;
      const { rows } = await db.query<{ phi: string }>(`SELECT phi FROM patients WHERE id = $1`, [patientId]);
      await db.query(`UPDATE patients SET phi = $2 WHERE id = $1`, [secondId, rows[0]!.phi]);
      const keys = await app.keyring.forPractice(practice.id);
      assert.throws(() => openPatient(keys, { id: secondId, phi: rows[0]!.phi, phi_key: 1 }), FieldEncryptionError);
      const response = await app.inject({ url: `/v1/patients/${secondId}`, headers: admin });
      assert.equal(response.statusCode, 500);
      assert.deepEqual(leaksIn(Buffer.from(response.body)), []);
      await db.query(`UPDATE patients SET phi = NULL, phi_key = NULL, name_order = NULL, first_name = 'Swap', last_name = 'Target' WHERE id = $1`, [secondId]);
    });

    test('the next start encrypts rows stored before migration 015, and clears their plaintext', async () => {
      const legacyId = await insertLegacyPatient(db, practice.id, { firstName: 'Legacy', lastName: 'Rowena', email: 'legacy.rowena@example.com' });
      const restarted = await startTestApp(db);
      const { rows } = await db.query<{ first_name: string | null; email: string | null; phi_key: number }>(`SELECT first_name, email, phi_key FROM patients WHERE id = $1`, [legacyId]);
      assert.deepEqual(rows[0], { first_name: null, email: null, phi_key: 1 });
      const found = await restarted.app.inject({ url: '/v1/patients?q=rowena', headers: admin });
      assert.deepEqual((found.json() as { data: Array<{ id: string; email: string }> }).data.map((p) => [p.id, p.email]), [[legacyId, 'legacy.rowena@example.com']]);
      const swapRow = await db.query<{ phi_key: number }>(`SELECT phi_key FROM patients WHERE first_name IS NULL AND last_name IS NULL AND phi IS NULL`);
      assert.equal(swapRow.rows.length, 0);
    });

    test('pg_dump of the database shows no patient name, email or phone', { skip: target.kind === 'postgres' ? false : 'PostgreSQL only (PGlite: the data directory test)' }, async () => {
      const { rows } = await db.query<{ schema: string }>(`SELECT current_schema() AS schema`);
      const dump = execFileSync('pg_dump', ['--schema', rows[0]!.schema, process.env.DATABASE_URL!], { maxBuffer: 256 * 1024 * 1024 });
      assert.ok(dump.includes('CREATE TABLE') || dump.includes('COPY'), 'the dump has content');
      assert.ok(dump.toString('latin1').includes(patientId), 'the dump holds the patient row');
      assert.deepEqual(leaksIn(dump), []);
    });

    test('rotate-data-key moves every row to a new key in batches while reads go on, and resumes after an interruption', async () => {
      for (let i = 0; i < 12; i++) {
        const response = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: { firstName: `Rota${'abcdefghijkl'[i]}`, lastName: 'Tion', email: `rota${i}@example.com` } });
        assert.equal(response.statusCode, 201, response.body);
      }
      const everyone = async () => {
        const response = await app.inject({ url: '/v1/patients?limit=100', headers: admin });
        assert.equal(response.statusCode, 200, response.body);
        return (response.json() as { data: Array<{ id: string; firstName: string; email: string | null }> }).data;
      };
      const before = await everyone();
      // The CLI's own keyring, as a separate process would have; a short cache so the settle wait is short.
      const cli = new PhiKeyring(db, { masterSecret: app.config.phi.masterKey, cacheSeconds: 1, openedCacheSize: 0 });
      const reads: number[] = [];
      const onBatch = async () => {
        const now = await everyone();
        assert.deepEqual(now, before);
        reads.push(now.length);
      };
      const interrupted = await rotateDataKey(db, cli, practice.id, { batchSize: 4, maxBatches: 2, onBatch });
      assert.deepEqual({ complete: interrupted.complete, resumed: interrupted.resumed, moved: interrupted.moved }, { complete: false, resumed: false, moved: 8 });
      const resumed = await rotateDataKey(db, cli, practice.id, { batchSize: 4, onBatch });
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.version, interrupted.version);
      assert.equal(resumed.complete, true);
      const { rows } = await db.query<{ phi_key: number; n: string }>(`SELECT phi_key, count(*) AS n FROM patients WHERE practice_id = $1 AND phi IS NOT NULL GROUP BY phi_key`, [practice.id]);
      assert.deepEqual(rows.map((row) => Number(row.phi_key)), [interrupted.version]);
      assert.ok(reads.length >= 3);
      assert.deepEqual(await everyone(), before);
      // A later run with nothing left behind starts the next rotation.
      const next = await rotateDataKey(db, cli, practice.id, { batchSize: 50 });
      assert.equal(next.version, interrupted.version + 1);
      assert.equal(next.resumed, false);
    });

    test('a wrong PHI_MASTER_KEY stops the start with a clear message; a new master key with the old one as previous re-wraps at once', async () => {
      const wrong = { ...app.config.phi, masterKey: 'a-different-master-key-of-at-least-32-characters' };
      await assert.rejects(startTestApp(db, { phi: wrong }), /PHI_MASTER_KEY \(key id [0-9a-f]+\) is not the master key that wrapped the stored data keys/);
      const rotated = { ...app.config.phi, masterKey: 'the-new-master-key-of-at-least-32-characters!', previousMasterKeys: [app.config.phi.masterKey] };
      await startTestApp(db, { phi: rotated });
      const { rows } = await withSystem(db, (tx) => tx.query<{ ids: string[] }>(`SELECT array_agg(DISTINCT master_key_id) AS ids FROM phi_data_keys`));
      assert.equal(rows[0]!.ids.length, 1);
      const onlyNew = await startTestApp(db, { phi: { ...rotated, previousMasterKeys: [] } });
      const read = await onlyNew.app.inject({ url: `/v1/patients/${patientId}`, headers: admin });
      assert.equal((read.json() as { email: string }).email, PATIENT.email);
      await assert.rejects(startTestApp(db, { phi: app.config.phi }), /is not the master key/);
    });
  });
}
