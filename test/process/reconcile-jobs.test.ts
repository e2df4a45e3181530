// Reconciliation jobs across real server processes on one PostgreSQL database: an instance is
// SIGKILLed while its job is being matched; the job is not left "running" forever: once its lease
// has expired it is claimed again and finishes, and of the two instances started after the kill
// only one runs it (attempt 2, never 3; one completion in the audit trail).
// Needs a real PostgreSQL: runs when DATABASE_URL is set (CI sets it), skips otherwise.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import pg from 'pg';
import { startServer, waitFor, type ServerHandle } from '../helpers/process.js';

const baseUrl = process.env.DATABASE_URL;
const SKIP_REASON = 'DATABASE_URL is not set: this test needs a real PostgreSQL server; CI always sets it';

async function withClient<T>(connectionString: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const GIVEN = ['Ana', 'Beth', 'Carla', 'Dana', 'Elena', 'Fatima', 'Grace', 'Hana', 'Iris', 'Jade', 'Kira', 'Lena', 'Mia', 'Nora', 'Olga', 'Paz'];
const FAMILY = ['Reyes', 'Moreno', 'Kowalski', 'Nguyen', 'Okafor', 'Raman', 'Silva', 'Tanaka', 'Ueda', 'Varga', 'Weiss', 'Young', 'Zhou', 'Abbas'];
const person = (i: number) => ({
  firstName: `${GIVEN[i % GIVEN.length]}${String.fromCharCode(97 + (i % 23))}`,
  lastName: `${FAMILY[(i * 7) % FAMILY.length]}${Math.floor(i / 300)}`,
  dateOfBirth: `19${50 + (i % 50)}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`,
  phoneNumber: `+1415${String(5000000 + i).padStart(7, '0')}`,
});

test('a job whose instance was SIGKILLed mid-run is re-run once after its lease, by one of two instances', { skip: baseUrl ? false : SKIP_REASON, timeout: 240_000 }, async () => {
  const dbName = `medspa_jobs_${randomBytes(5).toString('hex')}`;
  await withClient(baseUrl!, (client) => client.query(`CREATE DATABASE ${dbName}`));
  after(() => withClient(baseUrl!, (client) => client.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)).then(() => undefined));
  const url = new URL(baseUrl!);
  url.pathname = `/${dbName}`;
  const env = {
    DATABASE_URL: url.toString(),
    MEDSPA_ADMIN_EMAIL: 'owner@jobs.example',
    MEDSPA_ADMIN_PASSWORD: 'Jobs-Instances-Password-1',
    // Instances of one deployment share their secrets: the sealed rows open on every one.
    JWT_SECRET: randomBytes(32).toString('base64url'),
    ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    RECONCILE_JOB_LEASE_MS: '3000',
    RECONCILE_JOB_POLL_MS: '200',
  };
  const first = await startServer({ env });
  const login = await fetch(`${first.baseUrl}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: env.MEDSPA_ADMIN_EMAIL, password: env.MEDSPA_ADMIN_PASSWORD }) });
  const { accessToken } = (await login.json()) as { accessToken: string };
  const auth = { authorization: `Bearer ${accessToken}` };

  // Enough patients and rows that matching takes a few seconds.
  for (let start = 0; start < 20_000; start += 10_000) {
    const patients = Array.from({ length: 10_000 }, (_, k) => person(start + k));
    const imported = await fetch(`${first.baseUrl}/v1/patients/import`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'partial', patients }) });
    assert.ok(imported.status < 300, await imported.text());
  }
  const csv = ['First Name,Last Name,DOB,Mobile', ...Array.from({ length: 40_000 }, (_, i) => {
    const p = person(i % 20_000);
    return `${p.firstName},${i % 3 === 0 ? p.lastName.replace(/^./, 'X') : p.lastName},${p.dateOfBirth},${p.phoneNumber.slice(2)}`;
  })].join('\n');
  const created = await fetch(`${first.baseUrl}/v2/reconciliations?kind=PATIENTS`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: csv });
  const createdBody = await created.text();
  assert.equal(created.status, 202, createdBody);
  const { id } = JSON.parse(createdBody) as { id: string };
  const jobOn = async (server: ServerHandle) => (await (await fetch(`${server.baseUrl}/v2/reconciliations/${id}`, { headers: auth })).json()) as { status: string; progress: { phase: string } };

  await waitFor('the job to be matching', async () => (await jobOn(first)).progress.phase === 'scoring', { timeoutMs: 60_000, intervalMs: 50 });
  first.child.kill('SIGKILL');
  await first.exited;

  const [second, third] = await Promise.all([startServer({ env }), startServer({ env })]);
  const done = await waitFor('the job to be re-run to the end', async () => {
    const job = await jobOn(second);
    return job.status === 'running' || job.status === 'queued' ? null : job;
  }, { timeoutMs: 180_000, intervalMs: 250 });
  assert.equal(done.status, 'succeeded');

  await withClient(env.DATABASE_URL, async (client) => {
    await client.query('BEGIN');
    await client.query("SELECT set_config('role', 'medspa_system', true)");
    const job = await client.query<{ attempts: number }>('SELECT attempts FROM reconciliation_jobs WHERE id = $1', [id]);
    assert.equal(job.rows[0]!.attempts, 2, 'the killed attempt and one re-run: never run by both instances');
    const completions = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'reconciliation.job.completed' AND details->>'jobId' = $1", [id]);
    assert.equal(completions.rows[0]!.n, 1);
    const counts = await client.query<{ n: number }>('SELECT accepted_count + review_count + unmatched_count AS n FROM reconciliation_jobs WHERE id = $1', [id]);
    assert.equal(counts.rows[0]!.n, 40_000, 'every row of the file has its result');
    await client.query('COMMIT');
  });
  await Promise.all([second.stop(), third.stop()]);
});
