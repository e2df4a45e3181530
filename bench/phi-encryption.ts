// npm run bench:phi — what encrypting patients' PHI at rest costs, A/B in one run:
//
// 1. The patient list (GET /v1/patients?limit=20, STAFF token, 10,000 patients of one practice on
//    real PostgreSQL), server CPU per request measured in-process (process.cpuUsage over blocks of
//    requests through inject()), in alternating blocks for: the code before encryption (a checkout
//    named by BENCH_BASELINE, default /work/main, migrated into its own schema), this code with the
//    opened-row cache (PHI_ROW_CACHE_SIZE default) and this code with the cache off (0). Same seed
//    for every side. Alternating blocks because a shared 2-core machine drifts within a minute.
// 2. Search on 100,000 patients (BENCH_SEARCH_PATIENTS): p50/p99 of q by part of a last name, a
//    whole email and a phone number, through inject() (server time, no network).
//
// Figures are printed, never asserted. Scratch schemas are dropped at the end.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { signAccessToken } from '../src/auth/jwt.js';
import { permissionsForRole } from '../src/auth/rbac.js';
import { testConfig, type Config } from '../src/config.js';
import { openPostgres, type Database } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { readInPractice, statementAsSystem, withSystem } from '../src/db/scope.js';
import { listPatientsResult, listPatientsStatement, searchCandidatesStatement, withCandidates, type PatientRow } from '../src/patients/store.js';
import { insertPractice, insertUser } from '../src/users/first-start.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const BASELINE = process.env.BENCH_BASELINE ?? '/work/main';
const PATIENTS = 10_000;
const SEARCH_PATIENTS = Number(process.env.BENCH_SEARCH_PATIENTS ?? 100_000);
const BLOCKS = Number(process.env.BENCH_CPU_BLOCKS ?? 12);
const BLOCK = Number(process.env.BENCH_CPU_BLOCK ?? 400);
const SEARCHES = Number(process.env.BENCH_SEARCHES ?? 300);

interface Side {
  name: string;
  app: FastifyInstance;
  token: string;
  cpu: number[];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

// The same seed as bench/http-patients.ts: plaintext rows as a pre-015 database holds them (this
// code's start encrypts them; the baseline reads them as they are).
async function seed(db: Database, count: number) {
  return withSystem(db, async (tx) => {
    const practiceId = await insertPractice(tx, { name: 'Bench Spa', timeZone: 'America/New_York' });
    const email = `bench.${randomBytes(4).toString('hex')}@example.test`;
    const userId = await insertUser(tx, practiceId, { email, password: 'correct horse battery staple', role: 'STAFF' });
    await tx.query(
      `INSERT INTO patients (practice_id, first_name, last_name, date_of_birth, email, phone_number, status, notes)
       SELECT $1, (ARRAY['Ava','Liam','Mia','Noah','Zoë','Luis','Aiko','Omar'])[1 + i % 8],
              'Patient' || lpad(to_hex((i * 7919) % 65536), 4, '0') || CASE WHEN i > 65536 THEN to_hex(i) ELSE '' END,
              date '1950-01-01' + (i * 3) % 20000,
              'patient' || i || '@example.com', '+1212' || lpad(i::text, 7, '0'),
              (ARRAY['ACTIVE','ACTIVE','VIP','INACTIVE'])[1 + i % 4], 'Seeded for the HTTP benchmark'
         FROM generate_series(1, $2::int) AS i`,
      [practiceId, count],
    );
    return { practiceId, userId, email };
  });
}

async function schemaDb(admin: Database, poolSize = 10): Promise<{ db: Database; schema: string }> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  await admin.exec(`CREATE SCHEMA ${schema}`);
  return { db: await openPostgres({ connectionString: DATABASE_URL, poolSize, searchPath: `${schema},public` }), schema };
}

type Build = (config: Config, options: { db: Database; logStream: NodeJS.WritableStream }) => Promise<FastifyInstance>;

async function side(name: string, build: Build, config: Config, db: Database, user: { practiceId: string; userId: string; email: string }): Promise<Side> {
  const app = await build({ ...config, logLevel: 'info', rateLimitEnabled: false }, { db, logStream: createWriteStream('/dev/null') });
  const token = signAccessToken(
    { sub: user.userId, email: user.email, role: 'STAFF', practiceId: user.practiceId, permissions: permissionsForRole('STAFF') },
    { secret: app.auth.signingSecret, kid: app.auth.signingKid, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlSeconds: 3600 },
  ).token;
  return { name, app, token, cpu: [] };
}

async function cpuPerRequest(target: Side, url: string): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < BLOCK; i++) {
    const response = await target.app.inject({ url, headers: { authorization: `Bearer ${target.token}` } });
    if (response.statusCode !== 200) throw new Error(`${target.name} answered ${response.statusCode}: ${response.body.slice(0, 200)}`);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / BLOCK;
}

async function listAB(admin: Database): Promise<void> {
  const baselineModules = {
    app: (await import(pathToFileURL(join(BASELINE, 'src/app.ts')).href)) as { buildApp: Build },
    config: (await import(pathToFileURL(join(BASELINE, 'src/config.ts')).href)) as { testConfig: () => Config },
    migrate: (await import(pathToFileURL(join(BASELINE, 'src/db/migrate.ts')).href)) as { migrate: (db: Database) => Promise<string[]> },
  };
  const before = await schemaDb(admin);
  const after = await schemaDb(admin);
  try {
    await baselineModules.migrate.migrate(before.db);
    await migrate(after.db);
    const beforeUser = await seed(before.db, PATIENTS);
    const afterUser = await seed(after.db, PATIENTS);
    const config = testConfig();
    const started = Date.now();
    const sides = [
      await side(`before (${BASELINE})`, baselineModules.app.buildApp, { ...baselineModules.config.testConfig(), jwtSecret: config.jwtSecret }, before.db, beforeUser),
      await side('encrypted, row cache on', buildApp as Build, config, after.db, afterUser),
      await side('encrypted, row cache off', buildApp as Build, { ...config, phi: { ...config.phi, rowCacheSize: 0 } }, after.db, afterUser),
    ];
    console.log(`10,000 patients encrypted at first start in ${Date.now() - started} ms (both encrypted sides share the schema)`);
    await before.db.exec('ANALYZE patients');
    await after.db.exec('ANALYZE patients');
    const url = '/v1/patients?limit=20';
    for (const s of sides) await cpuPerRequest(s, url); // warm-up: JIT, plans, caches
    for (let block = 0; block < BLOCKS; block++) {
      const order = block % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) s.cpu.push(await cpuPerRequest(s, url));
    }
    const base = median(sides[0]!.cpu);
    console.log(`patient list, server CPU per request (median of ${BLOCKS} alternating blocks of ${BLOCK}):`);
    for (const s of sides) {
      const m = median(s.cpu);
      console.log(`  ${s.name.padEnd(40)} ${m.toFixed(3)} ms  (${(((m / base) - 1) * 100).toFixed(1)} % vs before; blocks ${Math.min(...s.cpu).toFixed(3)}–${Math.max(...s.cpu).toFixed(3)})`);
    }
    for (const s of sides) await s.app.close();
  } finally {
    for (const { db, schema } of [before, after]) {
      await db.close();
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
    }
  }
}

/** BENCH_SEARCH_SCHEMA: measure again on a schema a previous run seeded and kept (BENCH_KEEP=1). */
async function searchBench(admin: Database): Promise<void> {
  const kept = process.env.BENCH_SEARCH_SCHEMA;
  const scratch = kept
    ? { db: await openPostgres({ connectionString: DATABASE_URL, poolSize: 10, searchPath: `${kept},public` }), schema: kept }
    : await schemaDb(admin);
  try {
    await migrate(scratch.db);
    const user = kept ? await benchUser(scratch.db) : await seed(scratch.db, SEARCH_PATIENTS);
    const started = Date.now();
    const s = await side('encrypted', buildApp as Build, testConfig(), scratch.db, user);
    if (!kept) console.log(`${SEARCH_PATIENTS} patients encrypted at first start in ${Date.now() - started} ms`);
    await scratch.db.exec('ANALYZE patients');
    const queries: Record<string, (i: number) => string> = {
      'part of a last name': (i) => `atient${((i * 7919) % 65536).toString(16).padStart(4, '0')}`,
      'whole email': (i) => `patient${i}@example.com`,
      'phone number': (i) => `(212) ${String(i).padStart(7, '0').slice(0, 3)}-${String(i).padStart(7, '0').slice(3)}`,
    };
    console.log(`search on ${SEARCH_PATIENTS} patients, ${SEARCHES} requests each (server time through inject):`);
    for (const [what, query] of Object.entries(queries)) {
      const times: number[] = [];
      const slowest: Array<{ ms: number; q: string; total: number }> = [];
      for (let n = 0; n < SEARCHES + 20; n++) {
        const i = 1 + ((n * 104_729) % SEARCH_PATIENTS);
        const t = process.hrtime.bigint();
        const response = await s.app.inject({ url: `/v1/patients?limit=20&q=${encodeURIComponent(query(i))}`, headers: { authorization: `Bearer ${s.token}` } });
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        const body = response.json() as { pagination: { total: number } };
        if (response.statusCode !== 200 || body.pagination.total < 1) throw new Error(`${what} ${query(i)}: ${response.statusCode} ${response.body.slice(0, 200)}`);
        if (n >= 20) {
          times.push(ms);
          slowest.push({ ms, q: query(i), total: body.pagination.total });
        }
      }
      slowest.sort((a, b) => b.ms - a.ms);
      const work = await searchWork(scratch.db, user.practiceId, s.app, query);
      console.log(
        `  ${what.padEnd(22)} p50 ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms (target p99 < 20 ms); ` +
          `slowest: ${slowest.slice(0, 3).map((x) => `${x.ms.toFixed(0)} ms for ${x.total} matches`).join(', ')}`,
      );
      console.log(`    the search's own work (candidates + page read + opening, no HTTP, no audit commit): p50 ${work.p50.toFixed(2)} ms, p99 ${work.p99.toFixed(2)} ms`);
    }
    await s.app.close();
  } finally {
    await scratch.db.close();
    if (process.env.BENCH_KEEP) console.log(`kept schema ${scratch.schema} (BENCH_SEARCH_SCHEMA=${scratch.schema}; drop it when done)`);
    else await admin.exec(`DROP SCHEMA ${scratch.schema} CASCADE`);
  }
}

/**
 * The search alone, as listPatientPage does it: the candidates on the system path, the page in the
 * practice's scope, the opening and verification. What the request adds on top is the HTTP stack
 * and the wait for the read's audit event to commit (a WAL flush), which every PHI read pays.
 */
async function searchWork(db: Database, practiceId: string, app: FastifyInstance, query: (i: number) => string): Promise<{ p50: number; p99: number }> {
  const keys = await app.keyring.forPractice(practiceId);
  const times: number[] = [];
  for (let n = 0; n < SEARCHES; n++) {
    const options = { page: 1, limit: 20, q: query(1 + ((n * 104_729) % SEARCH_PATIENTS)), sort: 'lastName' as const };
    const t = performance.now();
    const { rows: candidates } = await statementAsSystem<{ id: string }>(db, searchCandidatesStatement(keys, practiceId, options));
    const statement = withCandidates(listPatientsStatement(keys, practiceId, options), candidates.map((row) => row.id));
    listPatientsResult(keys, options, (await readInPractice<PatientRow & { total: number }>(db, practiceId, statement)).rows);
    times.push(performance.now() - t);
  }
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

async function benchUser(db: Database): Promise<{ practiceId: string; userId: string; email: string }> {
  const { rows } = await withSystem(db, (tx) => tx.query<{ practiceId: string; userId: string; email: string }>(
    `SELECT practice_id AS "practiceId", id AS "userId", email FROM users WHERE email LIKE 'bench.%' LIMIT 1`,
  ));
  return rows[0]!;
}

const admin = await openPostgres({ connectionString: DATABASE_URL, poolSize: 1 });
try {
  if (process.env.BENCH_ONLY !== 'search') await listAB(admin);
  if (process.env.BENCH_ONLY !== 'list') await searchBench(admin);
} finally {
  await admin.close();
}
