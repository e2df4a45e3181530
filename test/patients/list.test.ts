// GET /v1/patients: pagination with exact totals under filters and search, a stable order, and
// the blueprint's limits (limit 100 at most: 101 is a 400).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withSystem } from '../../src/db/scope.js';
import { databaseTargets, migratedDatabase } from '../helpers/databases.js';
import { startTestApp } from '../helpers/app.js';
import { createTestPractice } from '../helpers/identity.js';
import { errorOf } from './helpers.js';

interface ListBody {
  data: Array<{ id: string; firstName: string; lastName: string; status: string; email: string | null }>;
  pagination: { page: number; limit: number; total: number; totalPages: number };
}

for (const target of databaseTargets()) {
  describe(`patient list on ${target.kind}`, async () => {
    const db = await migratedDatabase(target);
    const { app } = await startTestApp(db, { rateLimitEnabled: false });
    const practice = await createTestPractice(app);
    const other = await createTestPractice(app, 'Other Spa');
    const headers = practice.users.STAFF.headers;

    // 45 patients: 30 ACTIVE, 10 VIP, 5 INACTIVE; several share a last name so ties need the id.
    const statuses = [...Array(30).fill('ACTIVE'), ...Array(10).fill('VIP'), ...Array(5).fill('INACTIVE')] as string[];
    const rows = statuses.map((status, i) => ({
      firstName: i % 3 === 0 ? 'Sam' : 'Alex',
      lastName: ['Nguyen', 'Smith', 'Okafor', 'Smithson'][i % 4]!,
      email: `person${i}@clinic-list.test`,
      phoneNumber: `+1646555${String(1000 + i)}`,
      status,
    }));
    const imported = await app.inject({ method: 'POST', url: '/v1/patients/import', headers: practice.users.ADMIN.headers, payload: { patients: rows } });
    assert.equal(imported.statusCode, 200, imported.body);
    await app.inject({ method: 'POST', url: '/v1/patients/import', headers: other.users.ADMIN.headers, payload: { patients: rows } });

    const list = async (query: string) => {
      const response = await app.inject({ url: `/v1/patients${query}`, headers });
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as ListBody;
    };

    test('defaults: page 1, limit 20, exact total and totalPages', async () => {
      const body = await list('');
      assert.deepEqual(body.pagination, { page: 1, limit: 20, total: 45, totalPages: 3 });
      assert.equal(body.data.length, 20);
    });

    test('walking every page returns each patient exactly once, in a stable order', async () => {
      const seen: string[] = [];
      for (let page = 1; page <= 5; page += 1) seen.push(...(await list(`?limit=10&page=${page}`)).data.map((p) => p.id));
      assert.equal(seen.length, 45);
      assert.equal(new Set(seen).size, 45);
      const again = [];
      for (let page = 1; page <= 5; page += 1) again.push(...(await list(`?limit=10&page=${page}`)).data.map((p) => p.id));
      assert.deepEqual(again, seen);
    });

    test('sorted by last name then first name by default; -createdAt reverses creation order', async () => {
      const body = await list('?limit=100');
      const keys = body.data.map((p) => [p.lastName.toLowerCase(), p.firstName.toLowerCase()] as const);
      const byName = (a: readonly [string, string], b: readonly [string, string]) =>
        a[0] === b[0] ? (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) : a[0] < b[0] ? -1 : 1;
      assert.deepEqual(keys, [...keys].sort(byName));
      const newest = await list('?limit=100&sort=-createdAt');
      const oldest = await list('?limit=100&sort=createdAt');
      assert.deepEqual(newest.data.map((p) => p.id), oldest.data.map((p) => p.id).reverse());
    });

    test('the status filter gives exact totals', async () => {
      assert.equal((await list('?status=ACTIVE')).pagination.total, 30);
      const vip = await list('?status=VIP&limit=3');
      assert.deepEqual(vip.pagination, { page: 1, limit: 3, total: 10, totalPages: 4 });
      assert.ok(vip.data.every((p) => p.status === 'VIP'));
      assert.equal((await list('?status=INACTIVE')).pagination.total, 5);
    });

    test('q searches names (either order, any case), email and phone digits, with exact totals', async () => {
      // "smith" matches Smith and Smithson: 11 + 11 of the 45 (i % 4 = 1 or 3).
      assert.equal((await list('?q=smith')).pagination.total, 22);
      assert.equal((await list('?q=SMITHSON')).pagination.total, 11);
      assert.equal((await list('?q=sam%20nguyen')).pagination.total, rows.filter((r) => r.firstName === 'Sam' && r.lastName === 'Nguyen').length);
      assert.equal((await list('?q=nguyen%20sam')).pagination.total, rows.filter((r) => r.firstName === 'Sam' && r.lastName === 'Nguyen').length);
      assert.equal((await list('?q=person12@')).pagination.total, 1);
      assert.equal((await list(`?q=${encodeURIComponent('(646) 555-1007')}`)).pagination.total, 1);
      const combined = await list('?q=smith&status=VIP');
      assert.equal(combined.pagination.total, rows.filter((r) => r.lastName.startsWith('Smith') && r.status === 'VIP').length);
    });

    test('LIKE wildcards in q are taken literally', async () => {
      assert.equal((await list('?q=%25')).pagination.total, 0);
      assert.equal((await list('?q=_')).pagination.total, 0);
    });

    test('a page past the end is empty but still reports the exact total', async () => {
      const body = await list('?page=99');
      assert.deepEqual(body.data, []);
      assert.deepEqual(body.pagination, { page: 99, limit: 20, total: 45, totalPages: 3 });
    });

    test('a page past the end keeps the exact total under every filter (status, search, both)', async () => {
      for (const filter of ['status=VIP', 'status=INACTIVE', 'q=clinic-list', 'q=clinic-list&status=VIP', 'status=ACTIVE&sort=-createdAt']) {
        const all = (await list(`?${filter}&limit=100`)).pagination.total;
        assert.ok(all > 0, filter);
        const past = await list(`?${filter}&page=50`);
        assert.deepEqual(past.data, [], filter);
        assert.equal(past.pagination.total, all, filter);
      }
    });

    test('limit 100 is accepted; 101, 0, a negative page and unknown filters are 400s', async () => {
      assert.equal((await list('?limit=100')).data.length, 45);
      for (const query of ['?limit=101', '?limit=0', '?page=0', '?page=-1', '?limit=abc', '?status=DELETED', '?sort=email', '?practiceId=x', `?q=${'a'.repeat(101)}`]) {
        const response = await app.inject({ url: `/v1/patients${query}`, headers });
        assert.equal(response.statusCode, 400, `${query} → ${response.body}`);
        assert.equal(errorOf(response).code, 'VALIDATION_ERROR');
      }
    });

    test('totals stay exact through creates, status changes, deactivation, reactivation and a partial import', async () => {
      const admin = practice.users.ADMIN.headers;
      const created = await app.inject({ method: 'POST', url: '/v1/patients', headers: admin, payload: { firstName: 'Count', lastName: 'Me' } });
      const id = created.json().id as string;
      await app.inject({ method: 'PATCH', url: `/v1/patients/${id}`, headers: admin, payload: { status: 'VIP' } });
      await app.inject({ method: 'DELETE', url: `/v1/patients/${id}`, headers: admin });
      await app.inject({ method: 'DELETE', url: `/v1/patients/${id}`, headers: admin });
      await app.inject({ method: 'PATCH', url: `/v1/patients/${id}`, headers: admin, payload: { notes: 'no status change' } });
      await app.inject({
        method: 'POST',
        url: '/v1/patients/import',
        headers: admin,
        payload: { mode: 'partial', patients: [{ firstName: 'Imp', lastName: 'One', status: 'VIP' }, { firstName: 'Bad1' }] },
      });
      const { rows } = await withSystem(db, (tx) =>
        tx.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM patients WHERE practice_id = $1 GROUP BY status', [practice.id]),
      );
      const counted = Object.fromEntries(rows.map((r) => [r.status, r.n]));
      for (const status of ['ACTIVE', 'VIP', 'INACTIVE']) {
        assert.equal((await list(`?status=${status}`)).pagination.total, counted[status] ?? 0, status);
      }
      assert.equal((await list('')).pagination.total, rows.reduce((sum, r) => sum + r.n, 0));
      assert.equal((await list('?status=INACTIVE')).pagination.total, 6);
      assert.equal((await list('?status=VIP')).pagination.total, 11);
    });

    test('SQL in q is a search string, not SQL', async () => {
      const body = await list(`?q=${encodeURIComponent("' OR 1=1 --")}`);
      assert.equal(body.pagination.total, 0);
    });

    test('a page is never returned when its audit event cannot be written', async () => {
      const before = await withSystem(db, (tx) => tx.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'patient.list'"));
      // The audit writer's role loses its right to insert (this test database only).
      await db.exec('REVOKE INSERT ON audit_events FROM medspa_system');
      try {
        const response = await app.inject({ url: '/v1/patients?limit=5', headers });
        assert.ok(response.statusCode >= 500, `answered ${response.statusCode}`);
        assert.equal(response.json().error.code, 'INTERNAL_ERROR');
        assert.doesNotMatch(response.body, /Nguyen|Smith|Okafor|clinic-list/);
      } finally {
        await db.exec('GRANT INSERT ON audit_events TO medspa_system');
      }
      const afterwards = await withSystem(db, (tx) => tx.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'patient.list'"));
      assert.equal(afterwards.rows[0]!.n, before.rows[0]!.n);
      assert.equal((await list('?limit=5')).data.length, 5);
    });
  });
}
