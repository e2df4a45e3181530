// npm run bench:appointments — the front desk's calendar through the full stack: authenticated
// GET /v1/appointments for one day (startDate = endDate, limit 100: the day's 40 appointments) on
// real PostgreSQL holding a year of one practice's appointments (365 days x 4 practitioners x 10
// slots = 14,600), beside two other practices' years. Load as in bench:http (autocannon in its own
// process, BENCH_CONNECTIONS default 32, BENCH_SECONDS default 10 after a 2 s warm-up,
// BENCH_ROUNDS default 3, medians). The rate limiter is on with budgets no benchmark reaches.
// Everything lives in a scratch schema created here and dropped at the end.
import { randomBytes } from 'node:crypto';
import { openPostgres, type Queryable } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { withSystem } from '../src/db/scope.js';
import { insertPractice, insertUser } from '../src/users/first-start.js';
import { CONNECTIONS, ROUNDS, SECONDS, describe, measure, medianFigures, startFullStack, type Figures } from './http-common.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const POOL_SIZE = Number(process.env.BENCH_POOL_SIZE ?? 10);
const SECRET = randomBytes(32).toString('hex');
const PASSWORD = 'correct horse battery staple';

/** A practice with a year of appointments (2027), 8:00 to 15:30 local in slots of 45 minutes. */
async function seedPractice(tx: Queryable, name: string, timeZone: string): Promise<{ practiceId: string; userId: string; email: string }> {
  const practiceId = await insertPractice(tx, { name, timeZone });
  const email = `bench.${randomBytes(4).toString('hex')}@example.test`;
  const userId = await insertUser(tx, practiceId, { email, password: PASSWORD, role: 'STAFF' });
  const practitioners: string[] = [];
  for (let i = 0; i < 4; i += 1) practitioners.push(await insertUser(tx, practiceId, { email: `p${i}.${email}`, password: PASSWORD, role: 'PRACTITIONER' }));
  const patients = await tx.query<{ id: string }>(
    `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, status)
     SELECT $1, 'Bench', 'Patient' || i, date '1970-01-01' + i * 97, 'ACTIVE' FROM generate_series(1, 40) AS i RETURNING id`,
    [practiceId],
  );
  const services = await tx.query<{ id: string }>(
    `INSERT INTO services (practice_id, name, category, duration_minutes, price_cents)
     SELECT $1, 'Service ' || i, 'Bench', 45, 10000 * i FROM generate_series(1, 3) AS i RETURNING id`,
    [practiceId],
  );
  // Each (practitioner, slot) has its own patient, so nothing overlaps.
  await tx.query(
    `INSERT INTO appointments (practice_id, patient_id, practitioner_id, service_id, start_time, end_time, status, price_cents,
                               cancellation_reason)
     SELECT $1, ($2::uuid[])[p * 10 + s + 1], ($3::uuid[])[p + 1], ($4::uuid[])[(d + s) % 3 + 1], t, t + interval '45 minutes',
            status, 10000, CASE WHEN status = 'CANCELLED' THEN 'Seeded for the benchmark' END
       FROM generate_series(0, 364) AS d, generate_series(0, 3) AS p, generate_series(0, 9) AS s,
            LATERAL (SELECT (('2027-01-01'::date + d)::timestamp + interval '8 hours' + s * interval '45 minutes')
                            AT TIME ZONE $5 AS t,
                            (ARRAY['SCHEDULED','CONFIRMED','COMPLETED','CANCELLED'])[1 + (d + s + p) % 4] AS status) AS slot`,
    [practiceId, patients.rows.map((r) => r.id), practitioners, services.rows.map((r) => r.id), timeZone],
  );
  return { practiceId, userId, email };
}

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await openPostgres({ connectionString: DATABASE_URL, poolSize: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  const db = await openPostgres({ connectionString: DATABASE_URL, poolSize: POOL_SIZE, searchPath: `${schema},public` });
  try {
    await migrate(db);
    const { practiceId, userId, email } = await withSystem(db, async (tx) => {
      await seedPractice(tx, 'Other Spa West', 'America/Los_Angeles');
      await seedPractice(tx, 'Other Spa Berlin', 'Europe/Berlin');
      return seedPractice(tx, 'Bench Spa', 'America/New_York');
    });
    await db.exec('ANALYZE');
    console.log(`PostgreSQL ${DATABASE_URL.replace(/\/\/[^@]*@/, '//')} schema ${schema}: 3 practices x 14,600 appointments; ${CONNECTIONS} connections, ${SECONDS} s each, pool ${POOL_SIZE}`);

    const { app, token, baseUrl } = await startFullStack(db, { practiceId, userId, email }, SECRET);
    const url = `${baseUrl}/v1/appointments?startDate=2027-03-16&endDate=2027-03-16&limit=100`;
    const check = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    const body = (await check.json()) as { data: unknown[]; pagination: { total: number } };
    if (check.status !== 200 || body.data.length !== 40 || body.pagination.total !== 40) {
      throw new Error(`the calendar answered ${check.status}: ${JSON.stringify(body).slice(0, 300)}`);
    }
    const runs: Figures[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) runs.push(await measure(`day, round ${round}`, url, token));
    await app.close();
    console.log(`median of ${ROUNDS} rounds`);
    console.log(`${'one day'.padEnd(12)} ${describe(medianFigures(runs))}`);
  } finally {
    await db.close();
    await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
    await admin.close();
  }
}

await main();
